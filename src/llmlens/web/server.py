"""uvicorn's server for `llmlens ui`, which tells the dashboard's event streams to end when it stops.

Without it, Ctrl-C with a Live page open would wait out uvicorn's graceful timeout for the stream
and then cancel it with a traceback.
"""

from __future__ import annotations

import threading
from typing import Any

import uvicorn


class DashboardServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)
