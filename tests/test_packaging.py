"""The distributions a package index gets: the wheel's and the sdist's metadata, built by hatchling.

Both are built once, from this tree, by hatchling's PEP 517 hooks in a child process (about 3 s), with
no build isolation: hatchling is in the dev extra, so nothing is fetched.
"""

from __future__ import annotations

import email.message
import email.parser
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOME = "https://github.com/llmlens/llmlens"
DOCS = "https://llmlens.github.io/llmlens/"

# Markdown link and image targets: inline `[text](target "title")`, reference definitions
# `[label]: target`, and the src/href of inline HTML.
_INLINE = re.compile(r"\]\(\s*<?([^)\s>]+)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_HTML = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)""", re.IGNORECASE)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    build = (
        "import sys\n"
        "try:\n"
        "    from hatchling.build import build_sdist, build_wheel\n"
        "except ImportError:\n"
        "    sys.exit('hatchling is not installed: pip install -c constraints/dev.txt -e .[dev]')\n"
        f"print(build_wheel({str(out)!r}))\n"
        f"print(build_sdist({str(out)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", build], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"building the distributions failed:\n{done.stdout}\n{done.stderr}")
    wheel_name, sdist_name = done.stdout.split()[-2:]
    return out / wheel_name, out / sdist_name


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _metadata(wheel: Path) -> email.message.Message:
    files = _wheel_files(wheel)
    (name,) = [n for n in files if re.fullmatch(r"llmlens-[^/]+\.dist-info/METADATA", n)]
    return email.parser.BytesParser().parsebytes(files[name])


def link_targets(markdown: str) -> list[str]:
    """Every link and image target of a markdown text (inline, reference-style and HTML)."""
    return [*_INLINE.findall(markdown), *_REFERENCE.findall(markdown), *_HTML.findall(markdown)]


def test_link_targets_finds_every_kind_of_link() -> None:
    text = (
        "![shot](docs/a.png) and [doc](docs/b.md \"title\") and [ref][r] <img src='c.png'>\n[r]: docs/d.md\n"
    )
    assert link_targets(text) == ["docs/a.png", "docs/b.md", "docs/d.md", "c.png"]


def test_the_licence_ships_in_the_wheel_and_the_sdist(dists: tuple[Path, Path]) -> None:
    wheel, sdist = dists
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    # PyPI refuses a `License ::` classifier beside a License-Expression (PEP 639).
    assert not [c for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]
    files = _wheel_files(wheel)
    licence = files[next(n for n in files if n.endswith(".dist-info/licenses/LICENSE"))].decode()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence  # the full text, not a stub
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "LICENSE" in names and "PKG-INFO" in names


def test_the_metadata_names_the_project_home_and_pythons(dists: tuple[Path, Path]) -> None:
    metadata = _metadata(dists[0])
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL", []))
    assert urls == {
        "Homepage": HOME,
        "Documentation": DOCS,
        "Source": HOME,
        "Issues": f"{HOME}/issues",
    }
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = set(metadata.get_all("Classifier", []))
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    # genai-prices needs 3.11: on 3.10 the package installs without it (and leaves calls unpriced).
    requirements = metadata.get_all("Requires-Dist", [])
    genai_prices = [r for r in requirements if r.startswith("genai-prices")]
    assert genai_prices and all("python_version >= '3.11'" in r for r in genai_prices)


def test_the_long_description_has_only_absolute_links(dists: tuple[Path, Path]) -> None:
    """A package index shows README.md away from the repository: a relative link or image there is
    broken, so every target must be an absolute http(s) URL (or an anchor in the page)."""
    metadata = _metadata(dists[0])
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert description.strip().startswith("# llmlens")
    targets = link_targets(description)
    assert targets, "no links found: the README parsing is broken"
    relative = [t for t in targets if not (t.startswith(("https://", "http://", "#")))]
    assert relative == [], f"relative links in the long description: {relative}"
    images = re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", description)
    assert images and all(
        url.startswith("https://raw.githubusercontent.com/llmlens/llmlens/") for url in images
    )


def test_the_wheel_declares_the_entry_points(dists: tuple[Path, Path]) -> None:
    files = _wheel_files(dists[0])
    entry_points = files[next(n for n in files if n.endswith(".dist-info/entry_points.txt"))].decode()
    sections: dict[str, dict[str, str]] = {}
    section = ""
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            sections.setdefault(section, {})[name] = target
    assert sections["console_scripts"]["llmlens"] == "llmlens.cli:main"
    assert sections["opentelemetry_instrumentor"]["llmlens"] == "llmlens.instrumentor:Instrumentor"


def test_the_wheel_holds_the_package_and_its_data_only(dists: tuple[Path, Path]) -> None:
    names = set(_wheel_files(dists[0]))
    assert "llmlens/py.typed" in names  # the package claims typing (Typing :: Typed)
    assert "llmlens/web/static/app.js" in names and "llmlens/web/static/app.css" in names
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"llmlens", next(t for t in tops if t.endswith(".dist-info"))}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_sdist_holds_the_sources_not_the_working_tree(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[1]) as archive:
        members = archive.getmembers()
    names = {m.name.split("/", 1)[1] for m in members if "/" in m.name}
    tops = {name.split("/", 1)[0] for name in names}
    assert {"src", "tests", "docs", "LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= tops
    junk = {".venv", ".venv-openai2", ".venv-drift", ".hypothesis", ".pytest_cache", ".ruff_cache", ".git"}
    assert not tops & junk
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".db"))]
    assert not [n for n in names if n.startswith("docs/images/")]  # the README shows them from the home
    assert sum(m.size for m in members) < 5_000_000


def test_the_sdist_builds_the_same_wheel(dists: tuple[Path, Path], tmp_path: Path) -> None:
    """What a package index's users build from the sdist: the same files as the wheel built here."""
    with tarfile.open(dists[1]) as archive:
        archive.extractall(tmp_path, filter="data")
    (source,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    out = tmp_path / "wheel"
    build = f"from hatchling.build import build_wheel; print(build_wheel({str(out)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rebuilt = _wheel_files(out / done.stdout.split()[-1])
    original = _wheel_files(dists[0])
    assert sorted(rebuilt) == sorted(original)
    assert _metadata(out / done.stdout.split()[-1]).as_string() == _metadata(dists[0]).as_string()
