"""docs/reference/settings.md is what scripts/settings-reference makes of llmlens.settings, now.

A setting added, removed or changed in the tables without running the script fails here, so the
published reference never drifts from the code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from llmlens import settings

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "settings-reference"
PAGE = REPO / "docs" / "reference" / "settings.md"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_committed_reference_is_up_to_date_with_the_settings_tables() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr


def test_the_reference_has_one_entry_per_setting_with_its_values_and_default() -> None:
    page = PAGE.read_text(encoding="utf-8")
    entries = re.findall(r"^### `([A-Z][A-Z0-9_]+)`$", page, flags=re.MULTILINE)
    rows = (*settings.SETTINGS, *settings.OTEL_SETTINGS)
    assert sorted(entries) == sorted(row.env for row in rows)  # each once (grouped by what reads it)
    for row in rows:
        entry = page.split(f"### `{row.env}`\n", 1)[1].split("\n### ", 1)[0]
        assert "- **Values:** " in entry and "- **Default:** " in entry and "- **In code:** " in entry
        if row.keyword is not None:
            assert f"{row.keyword}=...)" in entry, row.env


def test_the_check_fails_on_a_stale_page_and_says_what_to_run(tmp_path: Path) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text(PAGE.read_text(encoding="utf-8").replace("### `LLMLENS_DB`\n", ""), encoding="utf-8")
    result = run("--check", "--page", str(stale))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"settings-reference: {stale} is out of date with llmlens.settings; run scripts/settings-reference"
    )
    written = run("--page", str(stale))  # and writing it brings it up to date
    assert written.returncode == 0 and run("--check", "--page", str(stale)).returncode == 0
