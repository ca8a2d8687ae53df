"""[models.NAME.serve]: how `cotbridge serve` starts the model's vLLM server (`cotbridge.serving` reads it).

The table says what the model needs (GPUs, nodes, replicas, memory); the family's flags (reasoning parser, prefix
caching) come from data in `cotbridge/serving/families.toml`, and GPUs and ports are assigned when the servers start.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from cotbridge.options import Strict

# Flags that decide where the server is and what it is called: the table's own fields set them, so that the URL
# `run` is given is the one the server listens on.
OWNED_FLAGS = ("--host", "--port", "--served-model-name", "--model")


class ServeSection(Strict):
    """[models.NAME.serve]: one vLLM server for the model (gpus x nodes x replicas devices in all)."""

    gpus: int = Field(default=1, ge=1, description="GPUs per node of each replica: --tensor-parallel-size")
    nodes: int = Field(
        default=1, ge=1, description="nodes of a Ray cluster one replica spans: --pipeline-parallel-size, Ray executor"
    )
    replicas: int = Field(default=1, ge=1, description="copies of the weights behind one URL: --data-parallel-size")
    ray_address: str | None = Field(
        default=None, description="the Ray cluster's address when nodes > 1 (default: RAY_ADDRESS in the environment)"
    )
    max_model_len: int | None = Field(default=None, ge=1, description="--max-model-len (default: the model's)")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="--gpu-memory-utilization, the share of each GPU's memory vLLM takes"
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="the address the server listens on")
    port: int | None = Field(default=None, ge=1, le=65535, description="default: a free port")
    model_path: str | None = Field(
        default=None, min_length=1, description="the weights (a folder or hub id) when they differ from the model's id"
    )
    vllm: str | list[str] = Field(
        default="vllm",
        description="vLLM's executable (its `serve` subcommand is used), or a command list that starts vLLM's "
        "OpenAI server and takes --model, e.g. ['python', '-m', 'vllm.entrypoints.openai.api_server']",
    )
    args: list[str] = Field(default_factory=list, description="more vLLM flags; a flag given here replaces cotbridge's")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of the server")
    start_timeout_s: float = Field(
        default=1800.0, gt=0, allow_inf_nan=False, description="how long the server may take to become healthy"
    )

    @field_validator("vllm")
    @classmethod
    def _command(cls, value: str | list[str]) -> str | list[str]:
        if (isinstance(value, list) and not value) or not all(value if isinstance(value, list) else [value]):
            raise ValueError("vllm is empty; give the vLLM executable (a name on PATH or a path)")
        return value

    @field_validator("args")
    @classmethod
    def _no_owned_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in OWNED_FLAGS:
                raise ValueError(
                    f"args sets {arg.split('=', 1)[0]}: cotbridge sets it from the table (host, port, model_path) "
                    "and the model's id; use those fields instead"
                )
        return value

    @field_validator("env")
    @classmethod
    def _no_device_choice(cls, value: dict[str, str]) -> dict[str, str]:
        if "CUDA_VISIBLE_DEVICES" in value:
            raise ValueError(
                "env sets CUDA_VISIBLE_DEVICES: cotbridge assigns GPUs so that servers do not overlap; set gpus instead"
            )
        return value

    @property
    def command(self) -> list[str]:
        return [self.vllm] if isinstance(self.vllm, str) else list(self.vllm)
