"""The `llmlens` command.

llmlens demo              fake provider + instrumented openai calls + a table of what was recorded
llmlens config            show the effective settings (and fail on a bad environment variable)
llmlens version
llmlens log|show|stats|health|prune|export|db info    the local store (llmlens.store.cli)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    commands.add_parser("config", help="print the effective settings read from the environment")
    commands.add_parser("version", help="print the llmlens version")
    store_cli.register(commands, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from llmlens.demo.workload import run_demo

        return run_demo(
            capture_content=args.capture_content, db_path=args.db or getattr(args, "db_global", None)
        )
    if args.command == "config":
        return _config()
    from llmlens.store import cli as store_cli

    if args.command in store_cli.COMMANDS:
        return store_cli.run(args)
    if args.command == "version":
        from llmlens import __version__

        print(__version__)
        return 0
    _parser().print_help()
    return 0


def _config() -> int:
    from dataclasses import fields

    from llmlens.sdk_setup import exporter_names, otlp_protocol
    from llmlens.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
        exporters = exporter_names(None)
        protocol = otlp_protocol()
    except SettingsError as error:
        print(f"llmlens: {error}", file=sys.stderr)
        return 2
    rows: list[tuple[str, object]] = []
    for field in fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, frozenset):
            value = ",".join(sorted(value))
        elif field.name == "db_path" and value is None:
            from llmlens.store.paths import default_db_path

            value = f"{default_db_path()} (default)"
        elif "secret" in field.name and value:
            value = "(set, not shown)"  # never print a secret
        rows.append((field.name, getattr(value, "value", value)))
    rows += [(f"{signal} exporter", ",".join(names) or "none") for signal, names in exporters.items()]
    rows.append(("otlp protocol", protocol))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
