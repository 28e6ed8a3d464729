"""`RotelCollector`: a real OTLP collector on loopback for the tests, from the `rotel` wheel.

rotel (https://github.com/streamfold/rotel) ships a Rust OTLP collector binary, `rotel-agent`, inside its
Python package. This helper starts it on two free 127.0.0.1 ports (gRPC and HTTP), with the blackhole
exporter and the debug log on, so everything it receives is printed to its stdout (redirected to a
temporary file), and the tests read that text:

    with RotelCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint}
        ...                                      # run something that exports over OTLP
        collector.wait_for("Name           : chat gpt-4o-mini")
        assert " -> service.name: Str(my-app)" in collector.output()

The debug log prints lines such as `Name           : chat gpt-4o-mini` (spans),
` -> gen_ai.usage.input_tokens: Int(4)` (attributes), ` -> Name: gen_ai.client.operation.duration`
(metrics) and `EventName: gen_ai.client.inference.operation.details` (log records).

A missing binary is a test failure (`pytest.fail`), never a skip: the tests that use it would otherwise
vanish silently.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

# Print every signal, with attributes, to stdout; drop the data afterwards.
DEBUG_ARGS = (
    "--exporter",
    "blackhole",
    "--debug-log",
    "traces",
    "--debug-log",
    "metrics",
    "--debug-log",
    "logs",
    "--debug-log-verbosity",
    "detailed",
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rotel_binary() -> Path:
    """Path of the `rotel-agent` binary in the installed `rotel` package; fails the test if absent."""
    spec = importlib.util.find_spec("rotel")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "rotel-agent"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = ", ".join(locations) or "nowhere (the rotel package is not installed)"
    pytest.fail(
        f"rotel-agent binary not found (looked in {where}); the OTLP tests need a real collector: "
        "install the dev extras (`pip install -e '.[dev]'`, which include `rotel`)",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RotelCollector:
    """rotel-agent as a subprocess on 127.0.0.1; a context manager.

    `env` adds ROTEL_* variables (rotel's own environment configuration); `args` are extra command-line
    options, by default `DEBUG_ARGS`. The listening ports are always passed on the command line (which
    wins over the environment), so two collectors never collide. `cwd` is the directory rotel runs in
    (relative paths in its settings, such as a processor file, are read from there).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = DEBUG_ARGS,
        startup_timeout: float = 10.0,
        cwd: str | Path | None = None,
    ) -> None:
        self._env = dict(env or {})
        self._cwd = cwd
        self._args = tuple(args)
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None
        self.grpc_port = 0
        self.http_port = 0

    # --- endpoints ------------------------------------------------------------------------------

    @property
    def http_endpoint(self) -> str:
        """For `OTEL_EXPORTER_OTLP_ENDPOINT` with the http/protobuf protocol."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """For `OTEL_EXPORTER_OTLP_ENDPOINT` with the grpc protocol."""
        return f"http://127.0.0.1:{self.grpc_port}"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RotelCollector:
        binary = rotel_binary()
        self._dir = tempfile.TemporaryDirectory(prefix="rotel-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env.update(self._env)
        last_error = ""
        # A free port can be taken between our probe and rotel's bind; try a few pairs.
        for attempt in range(3):
            self.grpc_port, self.http_port = free_port(), free_port()
            self._log = Path(self._dir.name) / f"rotel-{attempt}.out"
            command = [
                str(binary),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{self.grpc_port}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{self.http_port}",
                *self._args,
            ]
            with self._log.open("wb") as out:
                self._process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self._cwd,
                )
            error = self._wait_until_listening()
            if error is None:
                return self
            last_error = error
            self._kill()
            if "address" not in error.lower() or "in use" not in error.lower():
                break
        self._cleanup()
        raise RuntimeError(last_error)

    def _wait_until_listening(self) -> str | None:
        """None once both ports accept connections, else a description of what went wrong."""
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        pending = {self.http_port, self.grpc_port}
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                return f"rotel-agent exited with status {code} before listening; its output:\n{self.output()}"
            for port in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    pending.discard(port)
                except OSError:
                    pass
            if not pending:
                return None
            time.sleep(0.02)
        return (
            f"rotel-agent did not accept connections on 127.0.0.1 ports {sorted(pending)} within "
            f"{self._startup_timeout:g} s; its output:\n{self.output()}"
        )

    def stop(self) -> None:
        self._kill()
        self._cleanup()

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def _cleanup(self) -> None:
        directory, self._dir = self._dir, None
        if directory is not None:
            directory.cleanup()

    def __enter__(self) -> RotelCollector:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what it received -----------------------------------------------------------------------

    def output(self) -> str:
        """Everything rotel printed so far (stdout and stderr), without colour codes."""
        if self._log is None or not self._log.exists():
            return ""
        return _ANSI.sub("", self._log.read_text(encoding="utf-8", errors="replace"))

    def wait_for(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        """Poll the output until `text` occurs `count` times; returns the output, fails with it if not."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.output()
            if output.count(text) >= count:
                return output
            if self._process is not None and self._process.poll() is not None:
                pytest.fail(
                    f"rotel-agent exited (status {self._process.returncode}) while waiting for {text!r}; "
                    f"its output:\n{output}",
                    pytrace=False,
                )
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"rotel did not receive {text!r} (x{count}) within {timeout:g} s; "
                    f"found it {output.count(text)} time(s); its output:\n{output[-20000:]}",
                    pytrace=False,
                )
            time.sleep(0.05)
