"""The uvicorn server of ``freshrec serve``: a stop signal reaches the runtime at once.

uvicorn waits up to its graceful-shutdown timeout for open requests, then cancels them, and only then runs
the app's shutdown. A retrain request would be cancelled mid-flight while its thread went on replaying
(and the process waits for its threads before exiting). Telling the runtime at the signal lets the training
give up at its next step, so the request is answered (503) within the grace period.
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from freshrec.api.app import Runtime


class Server(uvicorn.Server):
    """uvicorn, setting ``runtime.stopping`` when the stop signal arrives."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.stopping.set()
        super().handle_exit(sig, frame)
