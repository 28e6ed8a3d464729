"""Where the store lives: `LLMLENS_DB`, else the user's data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_DB = "LLMLENS_DB"
FILE_NAME = "llmlens.db"


def user_data_dir() -> Path:
    """The per-user data directory of the platform (XDG on Linux), with an `llmlens` folder."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmlens"


def default_db_path() -> str:
    """`$LLMLENS_DB` if set, else `<user data dir>/llmlens/llmlens.db`."""
    return os.environ.get(ENV_DB) or str(user_data_dir() / FILE_NAME)
