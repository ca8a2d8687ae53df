"""Anthropic's Message Batches API for `anthropic/` models.

Wire facts (the batch processing guide, https://platform.claude.com/docs/en/build-with-claude/batch-processing,
and the API reference: https://platform.claude.com/docs/en/api/creating-message-batches,
https://platform.claude.com/docs/en/api/retrieving-message-batches,
https://platform.claude.com/docs/en/api/retrieving-message-batch-results): `POST /v1/messages/batches` takes
`requests: [{custom_id, params}]` (custom_id 1 to 64 characters of `[a-zA-Z0-9_-]`, unique in the batch; `params`
a Messages API request); headers `x-api-key` and `anthropic-version: 2023-06-01`. `GET /v1/messages/batches/{id}`
reports `processing_status` (in_progress, canceling, ended) and `request_counts {processing, succeeded, errored,
canceled, expired}`; an ended batch names a `results_url`, JSON Lines of `{custom_id, result}` where `result.type`
is succeeded (with the `message`), errored (with an `error`), canceled or expired (a batch not done within 24 hours
expires the requests it did not reach). Results come in any order and are matched by custom_id.

The Messages request is made from the request cotbridge shapes for a live call (`LiteLLMProvider.shape`) with
litellm's own Anthropic translation, and each succeeded message is translated back with it, so a batch answer is
what the live call through litellm would have returned (and the cache rows are the same).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from cotbridge.errors import ProviderError
from cotbridge.providers.batch_wire import BatchHTTP, JobState, Outcome, jsonl
from cotbridge.providers.litellm_hosted import import_litellm, mark_redacted
from cotbridge.providers.transport import Endpoint, server_root

API_VERSION = "2023-06-01"


class AnthropicBatchAPI:
    """The Message Batches API of one anthropic/ model."""

    path = "/v1/messages"

    def __init__(self, endpoint: Endpoint, api_key: str, model: str, served_model: str) -> None:
        self.root = server_root(endpoint.base_url)
        self.model = model
        self.served_model = served_model
        headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
        self.http = BatchHTTP(endpoint, model, headers)

    def params(self, request: dict[str, Any]) -> dict[str, Any]:
        """A shaped chat request (OpenAI form, as litellm takes it) as the Messages API request litellm would send.
        Fields litellm does not map (e.g. `output_config`) go as given, as litellm passes them on a live call."""
        from litellm.llms.anthropic.chat.transformation import AnthropicConfig

        import_litellm()
        rest = {k: v for k, v in request.items() if k not in ("model", "messages")}
        config = AnthropicConfig()
        mapped = config.map_openai_params(
            non_default_params=dict(rest), optional_params={}, model=self.served_model, drop_params=False
        )
        params: dict[str, Any] = config.transform_request(self.served_model, request["messages"], mapped, {}, {})
        for name, value in rest.items():
            if name not in mapped:
                params.setdefault(name, value)
        return params

    async def submit(self, requests: list[tuple[str, dict[str, Any]]]) -> JobState:
        payload = {"requests": [{"custom_id": cid, "params": self.params(request)} for cid, request in requests]}
        return _state(json.loads(await self.http.request("POST", f"{self.root}/v1/messages/batches", payload=payload)))

    async def retrieve(self, job_id: str) -> JobState:
        return _state(json.loads(await self.http.request("GET", f"{self.root}/v1/messages/batches/{job_id}")))

    async def results(self, state: JobState) -> dict[str, Outcome]:
        url = state.raw.get("results_url")
        if not url:
            return {}
        if _origin(str(url)) != _origin(self.root):  # the key goes only where the model's requests go
            raise ProviderError(
                f"the batch's results_url points to another server ({_origin(str(url))}); cotbridge sends the key "
                "only to the model's base_url",
                model=self.model,
                endpoint=self.http.endpoint.public_url,
            )
        outcomes: dict[str, Outcome] = {}
        for line in jsonl(await self.http.request("GET", str(url))):
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded" and isinstance(result.get("message"), dict):
                outcomes[str(line.get("custom_id"))] = result["message"]
            else:
                error = (result.get("error") or {}).get("error") or result.get("error") or {}
                message = error.get("message", "") if isinstance(error, dict) else str(error)
                outcomes[str(line.get("custom_id"))] = f"{kind}: {message}".strip(": ")
        return outcomes

    def answer(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        """A succeeded message in the chat-completion shape litellm gives a live call."""
        import httpx  # with litellm (the extra `hosted`)
        from litellm.llms.anthropic.chat.transformation import AnthropicConfig
        from litellm.types.utils import ModelResponse

        import_litellm()
        response = AnthropicConfig().transform_parsed_response(
            completion_response=body, raw_response=httpx.Response(200, json=body), model_response=ModelResponse()
        )
        answer: dict[str, Any] = mark_redacted(response.model_dump(mode="json"))
        answer["vendor_request"] = request
        return answer

    async def aclose(self) -> None:
        await self.http.aclose()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _state(batch: dict[str, Any]) -> JobState:
    status = str(batch.get("processing_status"))
    counts = batch.get("request_counts") or {}
    total = sum(int(counts.get(name) or 0) for name in ("processing", "succeeded", "errored", "canceled", "expired"))
    return JobState(
        job_id=str(batch["id"]),
        status=status,
        finished=status == "ended",
        done=total - int(counts.get("processing") or 0),
        total=total,
        raw=batch,
    )
