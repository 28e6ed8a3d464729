"""Where the store lives: `LLMLENS_DB`, else the user's data directory."""

from __future__ import annotations

from pathlib import Path

from llmlens.settings import ENV_DB, Settings, platform_data_home

__all__ = ["ENV_DB", "FILE_NAME", "default_db_path", "user_data_dir"]

FILE_NAME = "llmlens.db"


def user_data_dir() -> Path:
    """The per-user data directory of the platform (XDG on Linux), with an `llmlens` folder."""
    return Path(platform_data_home()) / "llmlens"


def default_db_path() -> str:
    """`$LLMLENS_DB` if set, else `<user data dir>/llmlens/llmlens.db`."""
    return Settings.from_env(only=("db_path",)).db_path or str(user_data_dir() / FILE_NAME)
