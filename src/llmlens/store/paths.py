"""Where the store lives: `LLMLENS_DB`, else the user's data directory."""

from __future__ import annotations

import os
from pathlib import Path

from llmlens.settings import ENV_DB, Settings, platform_data_home

__all__ = ["ENV_DB", "FILE_NAME", "default_db_path", "file_identity", "user_data_dir"]

FILE_NAME = "llmlens.db"


def user_data_dir() -> Path:
    """The per-user data directory of the platform (XDG on Linux), with an `llmlens` folder."""
    return Path(platform_data_home()) / "llmlens"


def default_db_path(lenient: bool = False) -> str:
    """`$LLMLENS_DB` if set, else `<user data dir>/llmlens/llmlens.db`. A bad `$LLMLENS_DB` raises
    SettingsError, or with `lenient` (in an application, where `instrument()` has said it) is ignored."""
    if lenient:
        return Settings.from_env_lenient(only=("db_path",))[0].db_path or str(user_data_dir() / FILE_NAME)
    return Settings.from_env(only=("db_path",)).db_path or str(user_data_dir() / FILE_NAME)


def file_identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at `path`, or None if there is none: tells a store deleted or
    replaced under an open connection from the one that was opened."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
