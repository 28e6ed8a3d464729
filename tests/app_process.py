"""An instrumented application in its own process, driven one line at a time (the profiling and
in-flight tests): `AppProcess(script, db, base_url)` starts `python tests/SCRIPT BASE_URL` with a clean
environment writing to the store `db`, waits for its `ready`, then `ask()` sends a command line and reads
one line of JSON back. `run_llmlens()` runs the `llmlens` command of this environment the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
LLMLENS = str(Path(sys.executable).parent / "llmlens")


def clean_env(db: Path, **extra: str) -> dict[str, str]:
    """This environment without any OTEL_*/LLMLENS_* variable, writing to the store `db`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(LLMLENS_DB=str(db), OTEL_SDK_DISABLED="false", **extra)
    return env


def run_llmlens(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLMLENS, *args, "--db", str(db)], capture_output=True, text=True, timeout=60, env=clean_env(db)
    )


class AppProcess:
    def __init__(self, script: str, db: Path, base_url: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / script), base_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(db, **env),
        )  # fmt: skip
        self.pid = self.process.pid
        assert self.read_line() == "ready"

    def read_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(
                f"the app ended: {self.process.stderr.read() if self.process.stderr else ''}"
            )
        return line.strip()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return json.loads(self.read_line())

    def quit(self) -> int:
        """Ask it to end (it uninstruments and shuts its providers down); its exit status."""
        if self.process.poll() is None:
            self.send("quit")
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
