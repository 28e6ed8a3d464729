"""The `llmlens` command.

llmlens demo              fake provider + instrumented openai calls + a table of what was recorded
llmlens config            show the effective settings (and fail on a bad environment variable)
llmlens version
llmlens log|show|stats|health|prune|export|db info    the local store (llmlens.store.cli)
llmlens profile arm|disarm|status|list|show          profiles of real requests (llmlens.profiling.cli)
llmlens ui                the local web dashboard over the store (llmlens.web.cli)
llmlens price MODEL       the price a model's calls get, and a cost worked out (llmlens.pricing.cli)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def _parser() -> argparse.ArgumentParser:
    from llmlens.store import cli as store_cli

    parser = store_cli.Parser(  # a bad command line: one line on stderr, exit status 2
        prog="llmlens",
        description="OpenTelemetry instrumentation for LLM calls, with a local view of every request.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a workload against a local fake provider and show what was recorded",
        description=(
            "Start a fake OpenAI-compatible server on 127.0.0.1, make a mixed set of calls through the real "
            "openai SDK with llmlens instrumentation on (chat, streams, tools, errors, Responses API, "
            "embeddings), then print one row per recorded span and a metrics summary. No API key and no "
            "network needed."
        ),
    )
    demo.add_argument(
        "--capture-content", action="store_true", help="also capture prompts and completions on the spans"
    )
    demo.add_argument(
        "--db",
        metavar="PATH",
        help="the local store to record into (default: $LLMLENS_DB or the user data dir)",
    )
    demo.add_argument(
        "--ui", action="store_true", help="then serve what was recorded with `llmlens ui` until Ctrl-C"
    )
    from llmlens.web.cli import DEFAULT_PORT, port_number

    demo.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"with --ui: its port (default {DEFAULT_PORT})"
    )
    config = commands.add_parser(
        "config",
        help="print every setting: its variable, effective value and source (and fail on a bad one)",
        description=(
            "Print every llmlens setting and the OpenTelemetry variables llmlens interprets: the name, the "
            "environment variable, whether the value comes from the environment or is the default, and the "
            "effective value (secrets are never printed). Exits with status 2, one line per bad variable, "
            "when a variable has a value llmlens cannot use: the line the command that reads it would give."
        ),
    )
    config.add_argument("--json", action="store_true", help="one JSON object per setting, in a list")
    commands.add_parser("version", help="print the llmlens version")
    store_cli.register(commands, parser)
    from llmlens.profiling import cli as profiling_cli

    profiling_cli.register(commands)
    from llmlens.web import cli as web_cli

    web_cli.register(commands)
    from llmlens.pricing import cli as price_cli

    price_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from llmlens.settings import SettingsError

    try:
        return _run(argv)
    except BrokenPipeError:  # `llmlens ... | head`: the reader left, the rest of the output is not wanted
        from llmlens.store.cli import quiet_stdout

        quiet_stdout()
        return 0
    except SettingsError as error:  # a bad variable a command reads first (LLMLENS_DB for the store's path)
        print(f"llmlens: {error}", file=sys.stderr)
        return 2


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "config":
        return _config(as_json=args.json)
    from llmlens.store import cli as store_cli

    if args.command in store_cli.COMMANDS:
        return store_cli.run(args)
    if args.command == "profile":
        from llmlens.profiling import cli as profiling_cli

        return profiling_cli.run(args)
    if args.command == "ui":
        from llmlens.web import cli as web_cli

        return web_cli.run(args)
    if args.command == "price":
        from llmlens.pricing import cli as price_cli

        return price_cli.run(args, _env_prices)
    if args.command == "version":
        from llmlens import __version__

        print(__version__)
        return 0
    _parser().print_help()
    return 0


def _demo(args: argparse.Namespace) -> int:
    """`llmlens demo [--ui]`: the workload, then (with --ui) the dashboard over what it recorded."""
    from llmlens.demo.workload import run_demo
    from llmlens.store.paths import default_db_path
    from llmlens.web import cli as web_cli

    db_path = args.db or getattr(args, "db_global", None) or default_db_path()
    # What would fail at the end fails first, before a minute of calls: a file that is no store...
    problem = web_cli._store_problem(db_path)
    if problem:
        print(f"llmlens: {problem}", file=sys.stderr)
        return 2
    if args.ui:  # ... and a port the dashboard cannot listen on
        try:
            web_cli._listen(web_cli.DEFAULT_HOST, args.port).close()
        except OSError as error:
            print(f"llmlens: cannot listen on {web_cli.DEFAULT_HOST}:{args.port}: {error.strerror or error}",
                  file=sys.stderr)  # fmt: skip
            return 2
    code = run_demo(capture_content=args.capture_content, db_path=db_path)
    if code != 0 or not args.ui:
        return code

    print()
    return web_cli.serve(db_path, port=args.port)


def _config(as_json: bool = False) -> int:
    """`llmlens config`: every row of llmlens.settings' tables, with its effective value and source."""
    import json

    from llmlens.settings import (
        OTEL_SETTINGS,
        SETTINGS,
        OtelSettings,
        Settings,
        plain,
        validate_environment,
    )

    errors = validate_environment()
    if errors:
        for error in errors:
            print(f"llmlens: {error}", file=sys.stderr)
        return 2
    settings, otel = Settings.from_env(), OtelSettings.from_env()
    sources = {**settings.sources(), **otel.sources()}
    exporters = otel.exporters()
    rows: list[dict[str, object]] = []
    for table, source in ((SETTINGS, settings), (OTEL_SETTINGS, otel)):
        for row in table:
            text, value = _shown(row.name, getattr(source, row.name), settings, exporters)
            if row.secret and value not in (None, {}, ""):
                text = value = "(set, not shown)"  # never print a secret
            rows.append({"name": row.name, "variable": row.env, "source": sources[row.name],
                         "value": plain(value), "text": text})  # fmt: skip
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "text"} for r in rows], indent=2))
        return 0
    lines = [("setting", "variable", "source", "value")]
    lines += [(str(r["name"]), str(r["variable"]), str(r["source"]), str(r["text"])) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for line in lines:
        print(*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[3], sep="  ")
    return 0


def _shown(name: str, value: object, settings: object, exporters: dict[str, list[str]]) -> tuple[str, object]:
    """(text, JSON value) of a setting's effective value; a default in words says what it amounts to."""
    from llmlens.settings import as_text

    if name == "db_path" and value is None:
        from llmlens.store.paths import default_db_path

        value = default_db_path()
        return value, value
    if name == "emit_event" and value is None:
        value = settings.event_enabled  # type: ignore[attr-defined]
        return f"{as_text(value)} (follows capture_content)", value
    if name.endswith("_exporter") and value is None:
        names = exporters[name.removesuffix("_exporter")]
        return f"{','.join(names) or 'none'} ({'an' if names else 'no'} OTLP endpoint is set)", names
    if name == "service_name" and value is None:
        try:  # what the SDK makes of OTEL_RESOURCE_ATTRIBUTES, which it reads itself
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource

            return f"{Resource.create().attributes.get(SERVICE_NAME)} (the SDK's default)", None
        except Exception:
            return "(the SDK's default)", None
    if name == "prices" and value:
        return f"{len(value)} prices (models or patterns)", value  # type: ignore[arg-type]
    if isinstance(value, str) and "@" in value and "://" in value:  # a URL with credentials in it
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.password:
            value = parts._replace(netloc=f"{parts.username}:***@{parts.hostname}"
                                   + (f":{parts.port}" if parts.port else "")).geturl()  # fmt: skip
    return (as_text(value) or "(none)"), value


def _env_prices() -> tuple[dict[str, Any], str | None]:
    """LLMLENS_PRICES's price table, and `LLMLENS_PRICES=<its value>` to say where it came from."""
    from llmlens.settings import ENV_PRICES, Settings, variable_text

    value = variable_text("prices")
    return dict(Settings.from_env(only=["prices"]).prices), (f"{ENV_PRICES}={value}" if value else None)


if __name__ == "__main__":
    sys.exit(main())
