"""The `cotbridge` command, run as a user runs it."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotbridge import __version__
from tests.conftest import _have_local_model
from tests.fault_server import FaultServer

CLI = [sys.executable, "-m", "cotbridge.cli"]


def run(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        cwd=cwd,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_ask_the_embedded_model_then_from_cache(tmp_path: Path) -> None:
    if _have_local_model():
        pytest.skip(_have_local_model() or "")
    db = tmp_path / "ask.db"
    first = run("ask", "What is 17 + 25?", "--cache", str(db), "--max-tokens", "48")
    assert first.returncode == 0, first.stderr
    assert "reasoning" in first.stdout and "answer from local/smollm2-135m" in first.stdout
    sent = re.search(r"(\d+) request\(s\), 0 cache hit\(s\)", first.stdout)
    assert sent, first.stdout
    second = run("ask", "What is 17 + 25?", "--cache", str(db), "--max-tokens", "48")
    assert f"0 request(s), {sent[1]} cache hit(s)" in second.stdout, "a rerun is served from the cache"
    stats = run("cache", "stats", str(db))
    assert stats.returncode == 0 and "smollm2-135m" in stats.stdout and f"{sent[1]} hits" in stats.stdout


def test_ask_keeps_its_default_cache_in_the_user_cache_dir(tmp_path: Path) -> None:
    if _have_local_model():
        pytest.skip(_have_local_model() or "")
    work, caches = tmp_path / "work", tmp_path / "caches"
    work.mkdir()
    env = {"COTBRIDGE_CACHE_DIR": str(caches)}
    first = run("ask", "What is 2 + 3?", "--max-tokens", "16", env=env, cwd=work)
    assert first.returncode == 0, first.stderr
    assert list(work.iterdir()) == [], "nothing is left in the folder ask was run from"
    assert (caches / "cache.db").is_file()
    assert run("cache", "path", env=env).stdout.strip() == str(caches / "cache.db")
    stats = run("cache", "stats", env=env)
    assert stats.returncode == 0 and "smollm2-135m" in stats.stdout, "cache stats finds the default cache"


def test_the_default_cache_follows_the_platform_cache_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COTBRIDGE_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    where = subprocess.run([*CLI, "cache", "path"], capture_output=True, text=True, env=env, timeout=60)
    assert where.stdout.strip() == str(tmp_path / "xdg" / "cotbridge" / "cache.db")
    missing = subprocess.run([*CLI, "cache", "stats"], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "`cotbridge ask` makes it" in missing.stderr


def test_top_level_help_speaks_to_users() -> None:
    text = run("--help", env={"COLUMNS": "80"}).stdout
    assert "chain of thought" in text and "cotbridge demo" in text and "README" in text
    listed = re.findall(r"^    (\w+) ", text, flags=re.MULTILINE)
    assert listed[:4] == ["demo", "ask", "run", "report"], listed
    assert "layer" not in text.lower()
    assert max(len(line) for line in text.splitlines()) <= 80


def test_models_check_reports_capabilities(llama_server: str) -> None:
    result = run("models", "check", "llamacpp/smollm2-135m", "--base-url", llama_server)
    assert result.returncode == 0, result.stderr
    for expected in ("health", "ok", "smollm2-135m", "forced-grammar", "completions"):
        assert expected in result.stdout


def test_models_check_gives_every_model_a_row_when_one_cannot_be_opened(llama_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    result = subprocess.run(
        [*CLI, "models", "check", "deepseek/deepseek-chat", "llamacpp/smollm2-135m", "--base-url", llama_server],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "COLUMNS": "200"},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    out = " ".join(result.stdout.split())
    assert "not opened" in out and "DEEPSEEK_API_KEY" in out
    assert "forced-grammar" in out, "the model after the one that failed is still checked"
    assert "capabilities from" in out and "bundled data" in out


def test_ask_shows_what_the_server_made_cotbridge_change(faults: FaultServer) -> None:
    env = {"OPENAI_API_KEY": "sk-cli-note-test"}
    ask = ["ask", "What is 2 + 2?", "--model", "openai/o3-unverified", "--base-url", faults.base_url, "--no-cache"]
    result = run(*ask, env=env)
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stderr
    assert "note: openai/o3-unverified" in out and "must be verified" in out and "sk-cli-note-test" not in out


def test_models_check_on_a_dead_server_fails_cleanly() -> None:
    result = run("models", "check", "vllm/x", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2")
    assert result.returncode == 1 and "down" in result.stdout and "Traceback" not in result.stderr


def test_bad_model_string_is_a_clear_error() -> None:
    result = run("ask", "hi", "--model", "nope/x", "--no-cache")
    assert result.returncode == 2
    assert "unknown provider 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_cache_stats_on_a_missing_file(tmp_path: Path) -> None:
    result = run("cache", "stats", str(tmp_path / "missing.db"))
    assert result.returncode == 2 and "no cache file" in result.stderr


def test_report_on_a_db_without_that_study_is_a_clear_error(tmp_path: Path) -> None:
    from cotbridge.study.results import ResultsDB

    db = tmp_path / "r.db"
    ResultsDB(db).close()
    empty = run("report", str(db))
    assert empty.returncode == 2 and "holds no study" in empty.stderr and "Traceback" not in empty.stderr


# -- what the CLI prints is the text as it is ---------------------------------------------------------------------

MARKUP = "[bold]x[/bold] [models.m1] [/x] :smile:"


class _MarkupServer(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose every answer is full of rich markup."""

    def do_POST(self) -> None:  # noqa: N802 (the handler's API)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content = f"<think>reasoning {MARKUP}</think>answer {MARKUP}"
        body = {
            "id": "x",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def markup_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MarkupServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_model_output_is_printed_as_it_is(markup_server: str) -> None:
    result = run("ask", "q", "--model", "openai-compatible/[red]m[/red]", "--base-url", markup_server, "--no-cache")
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    assert f"reasoning {MARKUP}" in flat and f"answer {MARKUP}" in flat
    assert "openai-compatible/[red]m[/red]" in flat


def test_error_messages_keep_brackets_and_paths(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "s"\ndataset = "builtin:arithmetic"\nconditions = ["empty"]\n[models.m1]\nmodel = "nope/x"\n'
    )
    result = run("run", str(study))
    assert result.returncode == 2 and "[models.m1]" in result.stderr
    odd = tmp_path / "a[" / "x]" / "b[/x].db"  # `[/x]` once crashed the error printer
    odd.parent.mkdir(parents=True)
    missing = run("cache", "stats", str(odd))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert str(odd) in "".join(missing.stderr.split("\n"))


def test_a_redacted_key_stays_visible_as_redacted(faults: FaultServer) -> None:
    secret = "sk-test-0123456789abcdef"
    result = run(
        "ask",
        "q",
        "--model",
        "openai-compatible/bad-request",
        "--base-url",
        faults.base_url,
        "--no-cache",
        env={"COTBRIDGE_OPENAI_COMPATIBLE_API_KEY": secret},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[redacted]" in result.stderr and secret not in result.stderr + result.stdout


# -- timeouts -----------------------------------------------------------------------------------------------------


def test_ask_and_models_check_have_timeouts(faults: FaultServer) -> None:
    started = time.monotonic()
    result = run(
        "ask", "q", "--model", "openai-compatible/hang", "--base-url", faults.base_url, "--no-cache", "--timeout", "0.5"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    for command in (["ask", "q"], ["models", "check", "vllm/x"], ["run", "s.toml"]):
        for bad in ("inf", "nan", "0", "-1", "soon"):
            refused = run(*command, "--timeout", bad)
            assert refused.returncode == 2 and "--timeout" in refused.stderr
    assert "(default 120)" in run("ask", "--help").stdout
    assert "(default 30)" in run("models", "check", "--help").stdout


def test_run_timeout_overrides_the_study_file(faults: FaultServer, tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "s"\ndataset = "builtin:arithmetic"\nsample = 1\nconditions = ["empty"]\n'
        "[study.retry]\nmax_attempts = 1\ntimeout_s = 600\n"
        f'[models.m1]\nmodel = "openai-compatible/hang"\nbase_url = "{faults.base_url}"\n'
    )
    started = time.monotonic()
    result = run("run", str(study), "--timeout", "0.5", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert time.monotonic() - started < 60


def test_run_help_says_how_failed_trials_end() -> None:
    result = run("run", "--help")
    assert result.returncode == 0 and "1 when any failed" in " ".join(result.stdout.split())
