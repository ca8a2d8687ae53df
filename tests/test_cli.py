"""The `cotbridge` command, run as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cotbridge import __version__
from tests.conftest import _have_local_model

CLI = [sys.executable, "-m", "cotbridge.cli"]


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "COLUMNS": "120"},
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


def test_models_check_reports_capabilities(llama_server: str) -> None:
    result = run("models", "check", "llamacpp/smollm2-135m", "--base-url", llama_server)
    assert result.returncode == 0, result.stderr
    for expected in ("health", "ok", "smollm2-135m", "forced-grammar", "completions"):
        assert expected in result.stdout


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
