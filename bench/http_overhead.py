"""The HTTP stack's own cost: an empty JSON answer under FastAPI and as a raw ASGI callable, same server.

    python bench/http_overhead.py [--seconds S] [--rounds N]

Each app runs in its own ``uvicorn`` process (uvloop + httptools, no access log, one process); the load
generator of ``freshrec bench`` (:func:`freshrec.bench.loadgen.closed_loop`, 8 keep-alive connections)
drives it from this process. The apps take turns for ``N`` rounds (the machine is shared; take medians):

* ``fastapi``: ``@app.get("/empty")`` returning the project's orjson response, behind the same pure-ASGI
  timing middleware shape ``create_app`` installs;
* ``raw``: an ASGI callable sending the same bytes (what :class:`freshrec.api.fast.FastLane` does).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from freshrec.bench.loadgen import closed_loop
from freshrec.bench.processes import stop_process
from freshrec.bench.serving import free_port

BODY = b'{"status":"ok"}'


def fastapi_app() -> Any:
    from fastapi import FastAPI

    from freshrec.api.app import TimingMiddleware
    from freshrec.api.responses import JSON
    from freshrec.metrics import Metrics

    app = FastAPI(default_response_class=JSON)

    @app.get("/empty")
    async def empty() -> JSON:
        return JSON({"status": "ok"})

    app.add_middleware(TimingMiddleware, metrics=Metrics())
    return app


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve(kind: str, port: int) -> None:
    import uvicorn

    app = fastapi_app() if kind == "fastapi" else raw_app
    uvicorn.run(
        app, port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False, lifespan="off"
    )


def measure(kind: str, seconds: float) -> float:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/empty", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        closed_loop(port, ["/empty"], 0.5)  # warm-up
        per_s: float = closed_loop(port, ["/empty"], seconds)["per_s"]
        return per_s
    finally:
        stop_process(process, signal.SIGTERM, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    runs: dict[str, list[float]] = {"fastapi": [], "raw": []}
    for _ in range(args.rounds):
        for kind, values in runs.items():
            values.append(measure(kind, args.seconds))
    for kind, values in runs.items():
        print(f"{kind:8s} req/s median {statistics.median(values):8.0f}  runs {[round(v) for v in values]}")
    ratio = statistics.median(runs["raw"]) / statistics.median(runs["fastapi"])
    print(f"raw / fastapi: {ratio:.2f}")


if __name__ == "__main__":
    main()
