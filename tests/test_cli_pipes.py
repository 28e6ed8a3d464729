"""`llmlens ... | head`: a reader that leaves early ends the command quietly, status 0, whatever the command.

Each command runs with its standard output a pipe whose reading end is already closed, so its first
write fails (EPIPE) however short its output is: the case `| head -1` hits only sometimes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LLMLENS = str(Path(sys.executable).with_name("llmlens"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("pipes") / "pipes.db")
    done = subprocess.run([LLMLENS, "profile", "arm", "--db", path, "--next", "1"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr  # a store with an arm: `profile list/status` print rows
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["config"],
        ["config", "--json"],
        ["price", "gpt-4o", "--json"],
        ["price", "gpt-4o"],
        ["version"],
        ["profile", "list"],
        ["profile", "status"],
        ["log"],
        ["stats"],
        ["--help"],
    ],
    ids=lambda args: " ".join(args),
)
def test_a_closed_pipe_ends_the_command_quietly(store: str, args: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env["LLMLENS_DB"] = store
    try:
        done = subprocess.run([LLMLENS, *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
                              env=env, check=False)  # fmt: skip
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 0
