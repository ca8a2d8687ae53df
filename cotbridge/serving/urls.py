"""The servers file: `cotbridge serve` writes the URLs of a study's running servers beside the study
(STUDY.servers.json), and `run` gives them to the served models whose base_url the study leaves unset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cotbridge.errors import ConfigError
from cotbridge.serving.plan import ServePlan, servers_file
from cotbridge.study.config import StudyConfig


def write_servers_file(plan: ServePlan, pids: dict[str, int]) -> None:
    """Writes the plan's URLs (whole: a reader never sees half a file)."""
    servers = {
        server.name: {
            "model": server.model,
            "base_url": server.base_url,
            "pid": pids[server.name],
            "log": str(server.log),
        }
        for server in plan.servers
    }
    tmp = plan.urls_file.with_name(plan.urls_file.name + ".tmp")
    tmp.write_text(json.dumps({"study": str(plan.study.resolve()), "servers": servers}, indent=2), encoding="utf-8")
    tmp.replace(plan.urls_file)


def read_servers_file(path: Path) -> dict[str, dict[str, Any]]:
    """The servers a running `cotbridge serve` wrote: {models name: {model, base_url, pid, log}}."""
    try:
        servers = json.loads(path.read_text(encoding="utf-8"))["servers"]
        if not isinstance(servers, dict) or not all(isinstance(s, dict) for s in servers.values()):
            raise TypeError("'servers' is not a table of tables")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a servers file of `cotbridge serve` ({exc}); delete it and serve again"
        ) from None
    return servers


def _running(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def already_serving(plan: ServePlan) -> None:
    """A ConfigError when a `cotbridge serve` of the same study still runs: a second would take its file."""
    if not plan.urls_file.is_file():
        return
    alive = {name: entry.get("pid") for name, entry in read_servers_file(plan.urls_file).items()}
    alive = {name: pid for name, pid in alive.items() if _running(pid)}
    if alive:
        running = ", ".join(f"models.{name} (pid {pid})" for name, pid in alive.items())
        raise ConfigError(
            f"servers of this study are already running ({running}; {plan.urls_file}); stop that `cotbridge serve` "
            "(Ctrl-C) first, or run against it without --serve"
        )


def with_served_urls(config: StudyConfig, study: str | Path) -> tuple[StudyConfig, list[str]]:
    """The study with the URLs of its running servers filled in where a served model leaves base_url unset, and
    one note per model saying where its URL came from (or that no server runs for it)."""
    waiting = [name for name, s in config.models.items() if s.serve is not None and s.base_url is None]
    if not waiting:
        return config, []
    path = servers_file(study)
    if not path.is_file():
        names = ", ".join(f"models.{name}" for name in waiting)
        return config, [
            f"{names} have a serve table but no server of `cotbridge serve` is running (no {path}); "
            f"they use the provider's default URL. Start them with `cotbridge serve {study}` or `run --serve`"
        ]
    servers = read_servers_file(path)
    notes: list[str] = []
    models = dict(config.models)
    for name in waiting:
        entry = servers.get(name)
        if entry is None:
            notes.append(f"models.{name}: not in {path}; it uses the provider's default URL")
            continue
        if entry.get("model") != config.models[name].model or not _running(entry.get("pid")):
            raise ConfigError(
                f"{path} is stale: the server of models.{name} ({entry.get('model')}, pid {entry.get('pid')}) is no "
                f"longer running or serves another model; start the servers again with `cotbridge serve {study}`, "
                "or delete the file"
            )
        models[name] = config.models[name].model_copy(update={"base_url": str(entry["base_url"])})
        notes.append(f"models.{name}: base_url {entry['base_url']} from {path} (cotbridge serve)")
    return config.model_copy(update={"models": models}), notes
