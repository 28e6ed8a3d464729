"""A FastAPI proxy (tests/proxies/openai_proxy.py) served by `uvicorn.run()`, instrumented by llmlens, in its
own process: tests/test_proxy_shutdown.py stops it with SIGTERM, as `docker stop` or systemd do.

    python tests/sigterm_proxy_app.py UPSTREAM_BASE_URL PORT      # LLMLENS_DB names the store
"""

from __future__ import annotations

import sys

import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import llmlens
from proxies import openai_proxy  # (this script's folder, tests/, is on the path)

trace.set_tracer_provider(TracerProvider())
llmlens.Instrumentor().instrument()
app = openai_proxy.create_app(sys.argv[1])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
