"""OpenAI's Batch API for `openai/` models (which go through the Responses API).

Wire facts (the Batch guide, https://platform.openai.com/docs/guides/batch, and the API reference,
https://platform.openai.com/docs/api-reference/batch and https://platform.openai.com/docs/api-reference/files/create):
the requests are a JSON Lines file, one `{custom_id, method: "POST", url: "/v1/responses", body}` a line (custom_id
unique within the file; up to 50,000 requests and 200 MB), uploaded with `POST /v1/files` (multipart, `purpose =
batch`). `POST /v1/batches {input_file_id, endpoint, completion_window: "24h"}` creates the job; `GET
/v1/batches/{id}` reports its `status` (validating, in_progress, finalizing, completed; or failed, expired,
cancelling, cancelled) and `request_counts {total, completed, failed}`. A finished job names an `output_file_id`
(lines `{custom_id, response: {status_code, body}, error: null}`) and an `error_file_id` (lines with an `error`,
e.g. code `batch_expired` for the requests an expired job did not reach, or a `response` whose status is not
200), read with `GET /v1/files/{id}/content`. The order of the lines is not the order of the requests: results are
matched by custom_id. Each body is a Responses API answer, translated as a live answer is (`chat_shape`).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from cotbridge.providers.batch_wire import BatchHTTP, JobState, Outcome, jsonl
from cotbridge.providers.openai_responses import chat_shape
from cotbridge.providers.transport import Endpoint

FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})


class OpenAIBatchAPI:
    """The Batch API of one openai/ model, over the Responses endpoint."""

    path = "/v1/responses"

    def __init__(self, endpoint: Endpoint, api_key: str, model: str) -> None:
        self.base_url = endpoint.base_url  # .../v1
        self.model = model
        self.http = BatchHTTP(endpoint, model, {"Authorization": f"Bearer {api_key}"})

    async def submit(self, requests: list[tuple[str, dict[str, Any]]]) -> JobState:
        lines = "".join(
            json.dumps({"custom_id": custom_id, "method": "POST", "url": self.path, "body": body}) + "\n"
            for custom_id, body in requests
        ).encode()

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", lines, filename="cotbridge-batch.jsonl", content_type="application/jsonl")
            return data

        uploaded = json.loads(await self.http.request("POST", f"{self.base_url}/files", form=form))
        created = {"input_file_id": uploaded["id"], "endpoint": self.path, "completion_window": "24h"}
        return _state(json.loads(await self.http.request("POST", f"{self.base_url}/batches", payload=created)))

    async def retrieve(self, job_id: str) -> JobState:
        return _state(json.loads(await self.http.request("GET", f"{self.base_url}/batches/{job_id}")))

    async def results(self, state: JobState) -> dict[str, Outcome]:
        """Each request's answer body, or why it has none, from the job's output and error files."""
        outcomes: dict[str, Outcome] = {}
        for name in ("output_file_id", "error_file_id"):
            file_id = state.raw.get(name)
            if not file_id:
                continue
            content = await self.http.request("GET", f"{self.base_url}/files/{file_id}/content")
            for line in jsonl(content):
                custom_id = str(line.get("custom_id"))
                outcomes[custom_id] = _outcome(line)
        return outcomes

    def answer(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        """A result's Responses body in the chat-completion shape a live call returns."""
        answer = chat_shape(body)
        answer["vendor_request"] = request
        return answer

    async def aclose(self) -> None:
        await self.http.aclose()


def _state(job: dict[str, Any]) -> JobState:
    status = str(job.get("status"))
    counts = job.get("request_counts") or {}
    errors = (job.get("errors") or {}).get("data") or []
    why = "; ".join(str(error.get("message") or error.get("code")) for error in errors if isinstance(error, dict))
    return JobState(
        job_id=str(job["id"]),
        status=status,
        finished=status in FINISHED,
        done=int(counts.get("completed") or 0) + int(counts.get("failed") or 0),
        total=int(counts.get("total") or 0),
        why=why,
        raw=job,
    )


def _outcome(line: dict[str, Any]) -> Outcome:
    """One line of an output or error file: the answer body, or why there is none."""
    error = line.get("error")
    response = line.get("response") or {}
    body = response.get("body")
    if not error and response.get("status_code") == 200 and isinstance(body, dict):
        return body
    if isinstance(error, dict):
        return f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip()
    inner = (body or {}).get("error") if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else body
    return f"HTTP {response.get('status_code')}: {message}"
