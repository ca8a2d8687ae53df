"""OpenAI's Batch API with its Files endpoints, after the Batch guide (https://platform.openai.com/docs/guides/batch)
and the API reference (https://platform.openai.com/docs/api-reference/batch, .../files/create,
.../files/retrieve-contents).

- `POST /v1/files` (multipart: `purpose = batch`, `file`): a JSON Lines file of `{custom_id, method, url, body}`;
  custom_ids must be unique, every line's url the same. Answers a File object.
- `POST /v1/batches {input_file_id, endpoint, completion_window: "24h"}`: a Batch object, status `validating`.
- `GET /v1/batches/{id}`: each retrieval moves the job one step: validating -> in_progress -> finalizing ->
  completed (or `expired`, for a job created while `expire_jobs` > 0: its first request is answered, the rest get
  the error code `batch_expired`). A finished job names an output file (lines `{id, custom_id, response:
  {status_code: 200, request_id, body}, error: null}`) and an error file (failed lines), results in reverse order
  (the reference promises no order).
- `GET /v1/files/{id}/content`: a file's bytes.
Each request is answered by the Responses API imitation (`responses_reply`); a request holding ITEM_ERROR_MARKER
is answered 500 (`server_error`), an errored item; while `fail_retrievals` > 0 a retrieval is a 500 (an outage).
A missing or wrong bearer key is a 401. It counts the jobs created (`created`) and retrievals (`retrievals`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.imitations.openai_responses import responses_reply

ITEM_ERROR_MARKER = "[batch item error]"
STEPS = ("validating", "in_progress", "finalizing", "completed")
ENDPOINTS = ("/v1/responses", "/v1/chat/completions")


@dataclass
class _Job:
    job: dict[str, Any]
    lines: list[dict[str, Any]]
    expire: bool
    step: int = 0


@dataclass
class OpenAIBatchImitation:
    key: str = ""  # the bearer key it takes (empty: any)
    expire_jobs: int = 0  # the next this many jobs expire
    fail_retrievals: int = 0  # the next this many retrievals answer 500 (an outage while a job runs)
    created: int = 0
    retrievals: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        self.expire_jobs = self.created = self.retrievals = self.fail_retrievals = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches/{job_id}", self.retrieve)
        app.router.add_get("/v1/files/{file_id}/content", self.content)

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.key and request.headers.get("Authorization") != f"Bearer {self.key}":
            error = {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=401)
        return None

    async def upload(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return _invalid("a batch input file needs purpose 'batch' and a file", "purpose")
        content = upload.file.read()
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = content
        return web.json_response(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": 1767225600,
                "filename": upload.filename,
                "purpose": "batch",
            }
        )

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        endpoint = body.get("endpoint")
        if body.get("completion_window") != "24h" or endpoint not in ENDPOINTS:
            return _invalid("completion_window must be '24h' and endpoint one the batch API serves", "endpoint")
        content = self.files.get(str(body.get("input_file_id")))
        if content is None:
            return _invalid("no such file", "input_file_id")
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        ids = [line.get("custom_id") for line in lines]
        if len(set(ids)) != len(ids) or any(line.get("url") != endpoint for line in lines):
            return _invalid("custom_id values must be unique and every url the batch's endpoint", "input_file_id")
        self.created += 1
        job_id = f"batch_{next(self._ids)}"
        job = {
            "id": job_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": STEPS[0],
            "output_file_id": None,
            "error_file_id": None,
            "created_at": 1767225600,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        expire = self.expire_jobs > 0
        self.expire_jobs -= expire
        self.jobs[job_id] = _Job(job, lines, expire)
        return web.json_response(job)

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        held = self.jobs.get(request.match_info["job_id"])
        if held is None:
            return web.json_response(
                {"error": {"message": "No batch found", "type": "invalid_request_error"}}, status=404
            )
        self.retrievals += 1
        if self.fail_retrievals > 0:
            self.fail_retrievals -= 1
            return web.json_response(
                {"error": {"message": "The server had an error", "type": "server_error"}}, status=500
            )
        if held.job["output_file_id"] is None and held.job["status"] != "expired":
            held.step += 1
            if held.step >= len(STEPS) - 1 or held.expire and held.step >= 2:
                self._finish(held)
            else:
                held.job["status"] = STEPS[held.step]
        return web.json_response(held.job)

    def _finish(self, held: _Job) -> None:
        out: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for number, line in enumerate(held.lines):
            custom_id, body = line["custom_id"], line["body"]
            if held.expire and number > 0:
                error = {"code": "batch_expired", "message": "This request could not be executed before the expiry."}
                errors.append({"id": f"batch_req_{number}", "custom_id": custom_id, "response": None, "error": error})
                continue
            status, reply = responses_reply(body)
            if ITEM_ERROR_MARKER in json.dumps(body):
                status, reply = 500, {"error": {"message": "The server had an error", "type": "server_error"}}
            response = {"status_code": status, "request_id": f"req_{number}", "body": reply}
            row = {"id": f"batch_req_{number}", "custom_id": custom_id, "response": response, "error": None}
            (out if status == 200 else errors).append(row)
        job = held.job
        job["status"] = "expired" if held.expire else "completed"
        job["request_counts"] = {"total": len(held.lines), "completed": len(out), "failed": len(errors)}
        for name, rows in (("output_file_id", out), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{next(self._ids)}"
                self.files[file_id] = "".join(json.dumps(row) + "\n" for row in reversed(rows)).encode()
                job[name] = file_id

    async def content(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        content = self.files.get(request.match_info["file_id"])
        if content is None:
            return web.json_response({"error": {"message": "No such File object"}}, status=404)
        return web.Response(body=content, content_type="application/octet-stream")


def _invalid(message: str, param: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=400)
