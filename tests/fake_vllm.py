"""A stand-in for vLLM's executable in the `cotbridge serve` tests: it takes the command line `cotbridge serve`
builds (`serve MODEL ...` or `--model MODEL ...`), listens on --host/--port and answers `GET /health`, `GET
/v1/models` and the chat and completions endpoints with the fault server's deterministic answers, as vLLM's
OpenAI-compatible server does (https://docs.vllm.ai/en/stable/serving/openai_compatible_server/).

Behaviour for the tests, from the environment: FAKE_VLLM_RECORD=PATH writes its arguments and CUDA_VISIBLE_DEVICES
/ RAY_ADDRESS there; FAKE_VLLM_EXIT=CODE prints a start-up error and exits with CODE; FAKE_VLLM_STUBBORN=1 ignores
SIGTERM (so only the group's SIGKILL ends it) and starts a child in its process group that does too;
FAKE_VLLM_HEALTH_AFTER=S answers /health with 503 for the first S seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fault_server import completion_for  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("positional", nargs="*")
    parser.add_argument("--model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    args, _ = parser.parse_known_args(argv)
    if args.positional[:1] == ["serve"] and len(args.positional) > 1:
        args.model = args.positional[1]
    return args


def main() -> None:
    args = parse(sys.argv[1:])
    if record := os.environ.get("FAKE_VLLM_RECORD"):
        seen = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")}
        Path(record).write_text(json.dumps({"argv": sys.argv[1:], "env": seen, "pid": os.getpid()}))
    if code := os.environ.get("FAKE_VLLM_EXIT"):
        print(f"ValueError: cannot load model {args.model}: out of memory", flush=True)
        sys.exit(int(code))
    if os.environ.get("FAKE_VLLM_STUBBORN"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
        subprocess.Popen([sys.executable, "-c", child])  # the engine process vLLM would start: same group
    healthy_at = time.monotonic() + float(os.environ.get("FAKE_VLLM_HEALTH_AFTER", "0"))
    served = args.served_model_name or args.model

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200 if time.monotonic() >= healthy_at else 503)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": served, "object": "model"}]})

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("model") != served:
            return web.json_response({"error": {"message": f"The model `{body.get('model')}` does not exist."}}, 404)
        return web.json_response(completion_for(body))

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", answer)
    app.router.add_post("/v1/completions", answer)
    print(f"fake vLLM serving {served} on {args.host}:{args.port}", flush=True)
    web.run_app(
        app, host=args.host, port=args.port, print=None, handle_signals=not os.environ.get("FAKE_VLLM_STUBBORN")
    )


if __name__ == "__main__":
    main()
