"""`llmlens profile arm|disarm|status|list|show`: profiling from the command line.

Like the store commands (llmlens.store.cli): `--db PATH` (default `$LLMLENS_DB`, else the user data
directory), readable tables or `--json`, and one line on stderr with exit status 2 for a user error.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from typing import Any

from llmlens.store import cli as store_cli
from llmlens.store import inputs

COMMAND = "profile"


def _positive_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e12 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; accepted: milliseconds >= 0")
    return value


def _profile_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a profile id (a number from `llmlens profile list`)"
        )
    return int(text)


def register(commands: Any) -> None:
    """Add `profile` and its subcommands to the `llmlens` parser."""
    from llmlens.profiling.arms import MAX_NEXT
    from llmlens.profiling.render import FORMATS

    common, as_json = store_cli._common(), store_cli._json_option()
    fmt = argparse.RawDescriptionHelpFormatter
    profile = commands.add_parser(
        COMMAND, formatter_class=fmt,
        help="pyinstrument profiles of real requests: arm, disarm, status, list, show",
        description=(
            "Profile LLM requests in the processes that write to the store (apps and proxies run with\n"
            "llmlens and its local store). `arm` asks for the next N matching requests; every such process\n"
            "picks it up within a second and profiles each request from its start to its last exit (the\n"
            "end of its stream; for a proxied request, its last byte out). Profiles are stored in the same\n"
            "file, linked to the request row (`llmlens log` marks them, `llmlens show` summarises them).\n\n"
            "examples:\n  llmlens profile arm --next 3 --model 'gpt-4o*' --min-duration 500\n"
            "  llmlens profile status\n  llmlens profile list\n"
            "  llmlens profile show 12 --format html --output profile.html"
        ),
    )  # fmt: skip
    actions = profile.add_subparsers(dest="profile_command", metavar="COMMAND", required=True)
    arm = actions.add_parser(
        "arm", parents=[common], formatter_class=fmt,
        help="profile the next N matching requests, in every process writing to the store",
        description=(
            "Profile the next N requests that match every filter given, across all the processes that\n"
            "write to the store: N profiles in all, however many processes take part. A request faster\n"
            "than --min-duration is profiled but not kept, and does not count. The arm ends when N are\n"
            "stored, at --expires, or at `llmlens profile disarm`."
        ),
    )  # fmt: skip
    arm.add_argument(
        "--next", dest="count", type=store_cli._value(inputs.count, MAX_NEXT), default=1, metavar="N",
        help=f"how many profiles to keep (default 1, at most {MAX_NEXT})",
    )  # fmt: skip
    arm.add_argument("--provider", help="gen_ai.provider.name, e.g. openai, anthropic, gcp.gemini")
    arm.add_argument("--model", help="the request model, exactly or as a shell pattern ('gpt-4o*')")
    arm.add_argument("--operation", help="chat, embeddings, generate_content, ...")
    arm.add_argument("--route", help="a proxied request's path, exactly or as a pattern ('/v1/*')")
    arm.add_argument(
        "--min-duration", type=_positive_ms, metavar="MS", help="keep only requests at least this slow"
    )
    arm.add_argument(
        "--expires", type=store_cli.DURATION, default=600.0, metavar="DURATION",
        help="stop looking after this long: 30s, 10m, 2h (default 10m)",
    )  # fmt: skip
    actions.add_parser(
        "disarm", parents=[common], help="end every live arm", description="End every live arm of the store."
    )
    actions.add_parser(
        "status", parents=[common, as_json],
        help="the live arms, the last ended ones, profiles stored, requests skipped or not kept",
        description="The live arms (what is left of each, until when), the last arms that ended and why, the "
        "number of profiles stored, and what the processes counted: requests skipped because their thread "
        "was profiling another one, sampled requests too fast to keep, armed requests under --min-duration.",
    )  # fmt: skip
    listing = actions.add_parser(
        "list", parents=[common, as_json], help="the stored profiles, newest first",
        description="The stored profiles, newest first: id, time, why it was taken, duration, samples, the "
        "request (id from `llmlens log`) and the frame of your own code that took the most time.",
    )  # fmt: skip
    listing.add_argument(
        "--limit", type=store_cli._value(inputs.count, 10_000), default=50, help="rows (default 50)"
    )
    show = actions.add_parser(
        "show", parents=[common], formatter_class=fmt, help="one profile as text, HTML or speedscope JSON",
        description=(
            "Render one stored profile with pyinstrument's renderers: a call tree as text (default), the\n"
            "interactive HTML page, or speedscope JSON (open it at https://www.speedscope.app or in a\n"
            "local speedscope). HTML and speedscope go to --output, or to stdout.\n\n"
            "examples:\n  llmlens profile show 12\n  llmlens profile show 12 --format html --output p.html"
        ),
    )  # fmt: skip
    show.add_argument("id", type=_profile_id, metavar="ID", help="the profile id (`llmlens profile list`)")
    show.add_argument("--format", choices=FORMATS, default="text", help="default text")
    show.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    from llmlens.settings import SettingsError
    from llmlens.store.profiles import ProfileError
    from llmlens.store.queries import QueryError
    from llmlens.store.schema import StoreError

    path = store_cli._path(args)
    handlers = {"arm": _arm, "disarm": _disarm, "status": _status, "list": _list, "show": _show}
    try:
        return handlers[args.profile_command](args, path)
    except (StoreError, QueryError, SettingsError, ProfileError, ValueError, store_cli._Fail) as error:
        store_cli._error(str(error))
        return 2
    except sqlite3.Error as error:
        store_cli._error(f"{path}: {error}")
        return 2
    except BrokenPipeError:  # `llmlens profile list | head`: llmlens.cli.main ends it quietly
        raise
    except OSError as error:  # show --output: a directory that does not exist, no permission
        store_cli._error(
            f"cannot write {error.filename or getattr(args, 'output', None)}: {error.strerror or error}"
        )
        return 2


def _arm(args: argparse.Namespace, path: str) -> int:
    from llmlens import profiling

    arm_id = profiling.arm(
        args.count, provider=args.provider, model=args.model, operation=args.operation, route=args.route,
        min_duration_ms=args.min_duration, expires=args.expires, db=path,
    )  # fmt: skip
    filters = _filters_text(vars(args)) or "any request"
    until = time.strftime("%H:%M:%S", time.localtime(time.time() + args.expires))
    print(f"armed (arm {arm_id}): the next {args.count} of {filters}, until {until}, in {path}")
    print("processes writing to this store pick it up within a second; see: llmlens profile status")
    return 0


def _disarm(args: argparse.Namespace, path: str) -> int:
    from llmlens import profiling

    ended = profiling.disarm(path)
    print(f"disarmed {ended} arm{'s' if ended != 1 else ''}" if ended else "nothing was armed")
    return 0


def _status(args: argparse.Namespace, path: str) -> int:
    from llmlens import profiling

    status = profiling.status(path)
    if args.json:
        store_cli._print_json(status)
        return 0
    live = status["live"]
    if live:
        print("live arms:")
        for arm in live:
            print("  " + _arm_line(arm))
    else:
        print("nothing armed")
    if status["recent"]:
        print("ended arms:")
        for arm in status["recent"][:5]:
            print("  " + _arm_line(arm))
    counters = status["counters"]
    print(f"profiles stored: {status['profiles']}")
    print(
        f"requests skipped (thread busy with another profile): {counters['skipped_busy']}; "
        f"sampled but too fast to keep: {counters['sampled_not_kept']}; "
        f"armed but under --min-duration: {counters['armed_too_fast']}; "
        f"not stored (arm used up elsewhere, store error): {counters['not_stored']}"
    )
    return 0


def _arm_line(arm: dict[str, Any]) -> str:
    from llmlens.store import formats

    taken = arm["requested"] - arm["remaining"]
    line = f"arm {arm['id']}: {taken}/{arm['requested']} profiled, {_filters_text(arm) or 'any request'}"
    if arm["state"] == "live":
        line += f", until {formats.local_time(arm['expires_ns'])}"
    else:
        line += f", {arm['state']}"
    if arm["skipped_busy"]:
        line += f", {arm['skipped_busy']} skipped (thread busy)"
    return line


def _filters_text(values: dict[str, Any]) -> str:
    parts = [
        f"{name} {values[name]}" for name in ("provider", "model", "operation", "route") if values.get(name)
    ]
    minimum = values.get("min_duration_ms", values.get("min_duration"))
    if minimum:
        parts.append(f"at least {minimum:g} ms")
    return ", ".join(parts)


def _list(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats
    from llmlens.store.profiles import list_profiles

    found = _read(path, list_profiles, args.limit)
    if args.json:
        store_cli._print_json(found)
        return 0
    if not found:
        print("no profiles yet (llmlens profile arm --next 1, then make a request)")
        return 0
    from llmlens.text_table import table

    header = (
        "id",
        "time",
        "why",
        "duration",
        "samples",
        "request",
        "provider",
        "model",
        "top frame of yours",
    )
    rows = []
    for p in found:
        frames = p["summary"].get("top_frames") or []
        top = f"{frames[0]['function']} {frames[0]['share'] * 100:.0f}%" if frames else ""
        rows.append((
            p["id"], formats.local_time(p["start_ns"]), p["reason"] + (" error" if p["is_error"] else ""),
            formats.duration(p["duration_ms"]), p["sample_count"],
            p["request_id"] if p["request_id"] is not None else "(pruned)",
            p["provider"] or "", p["model"] or p["route"] or "", top,
        ))  # fmt: skip
    print(table(header, rows, right=(0, 3, 4, 5)))
    print(f"({len(found)} profiles; open one: llmlens profile show ID)")
    return 0


def _show(args: argparse.Namespace, path: str) -> int:
    from llmlens.profiling.render import render
    from llmlens.store.profiles import get_profile

    profile = _read(path, get_profile, args.id)
    if profile is None:
        raise store_cli._Fail(f"no profile {args.id} in {path} (see llmlens profile list)")
    color = args.format == "text" and not args.output and sys.stdout.isatty()
    text = render(profile, args.format, color=color)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.format} of profile {args.id} to {args.output}")
        return 0
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _read(path: str, query: Any, *args: Any) -> Any:
    """`query(conn, *args)` on the store at `path`, read only."""
    conn = store_cli._open(path)
    try:
        return query(conn, *args)
    finally:
        conn.close()
