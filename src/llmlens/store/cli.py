"""The store subcommands of `llmlens`: log, show, stats, health, prune, export, db info.

Every command reads the store at `--db PATH` (default: `$LLMLENS_DB`, else the user data directory),
prints readable tables, or with `--json` prints only JSON on stdout. A missing file, a file that is not
an llmlens store, or a bad option value gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from llmlens.store import inputs

COMMANDS = ("log", "show", "stats", "health", "prune", "export", "db")
POLL_S = 0.5
MAX_LIMIT = 10_000


class _Fail(Exception):
    """A user error: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with llmlens errors: a bad command line is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        message = message.replace("\n", " ")
        if not message.startswith("argument "):  # unknown or missing arguments: point to the help
            message += f" (see {self.prog} --help)"
        self.exit(2, f"llmlens: {message}\n")


# --- option values ---------------------------------------------------------------------------------


def _value(check: Callable[..., Any], *args: Any) -> Callable[[str], Any]:
    """An argparse `type` from a check in llmlens.store.inputs (its message becomes the option's error)."""

    def parse(text: str) -> Any:
        try:
            return check(text, *args)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__
    return parse


def _request_id(text: str) -> str:
    inputs.request_id(text)
    return text


DURATION = _value(inputs.duration)  # seconds
WHEN = _value(inputs.timestamp)  # ns
COUNT = _value(inputs.count, MAX_LIMIT)
CURSOR = _value(inputs.cursor)
REQUEST_ID = _value(_request_id)
TRACE_ID = _value(inputs.trace_id)


# --- the parsers -----------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "--db",
        metavar="PATH",
        help="the store file (default: $LLMLENS_DB, else llmlens.db in the user data directory)",
    )
    return common


def _json_option() -> argparse.ArgumentParser:
    parent = Parser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON only (for scripts)")
    return parent


def _filter_options() -> argparse.ArgumentParser:
    parent = Parser(add_help=False)
    group = parent.add_argument_group("filters (all that are given must match)")
    group.add_argument(
        "--since",
        type=WHEN,
        metavar="WHEN",
        help="started at or after: 30s, 15m, 1h, 7d ago or an ISO time",
    )
    group.add_argument("--until", type=WHEN, metavar="WHEN", help="started before (same syntax)")
    group.add_argument("--model", help="request or response model, exactly")
    group.add_argument("--provider", help="gen_ai.provider.name, e.g. openai, anthropic, gcp.gemini")
    group.add_argument(
        "--status", choices=("ok", "error", "unset"), help="span status (unset: streams cut short)"
    )
    group.add_argument("--key", dest="api_key_label", metavar="LABEL", help="API key label")
    group.add_argument("--operation", help="chat, embeddings, text_completion, generate_content, ...")
    group.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only streamed (--stream) or only non-streamed (--no-stream) requests",
    )
    group.add_argument(
        "--error",
        dest="error_text",
        metavar="TEXT",
        help="failed requests whose error type or message has TEXT",
    )
    group.add_argument(
        "--trace",
        dest="trace_id",
        type=TRACE_ID,
        metavar="TRACE_ID",
        help="requests of one trace (32 hex digits)",
    )
    return parent


def register(commands: Any, parser: argparse.ArgumentParser | None = None) -> None:
    """Add the store subcommands to `llmlens` (and a global `--db` to `parser`, if given)."""
    if parser is not None:
        # also accepted before the command (`llmlens --db x.db log`); each command's --help documents it
        parser.add_argument("--db", dest="db_global", metavar="PATH", help=argparse.SUPPRESS)
    common, as_json, filters = _common(), _json_option(), _filter_options()
    fmt = argparse.RawDescriptionHelpFormatter

    log = commands.add_parser(
        "log", parents=[common, as_json, filters], formatter_class=fmt,
        help="the request log, newest first, with filters; --follow to watch it",
        description=(
            "Show recorded LLM requests, newest first, one page at a time (--limit rows; the footer gives\n"
            "the --cursor of the next, older page). With --follow, show the newest rows oldest first, then\n"
            "print new rows as they are written (polling every 0.5 s) until Ctrl-C. With --json: an object\n"
            "{rows, next_cursor}; with --json --follow: one JSON object per line.\n\n"
            "With --active, show instead the requests in flight now in every live process writing the\n"
            "store, longest-running first, with a stream's chunks so far and time to first chunk (refreshed\n"
            "every 0.5 s). One snapshot: to refresh it, `watch -n 1 llmlens log --active`. Only --provider,\n"
            "--model (the request model), --operation, --stream, --trace and --limit apply.\n\n"
            "examples:\n  llmlens log --provider openai --status error --since 1h\n"
            "  llmlens log --model gpt-4o --json --limit 200\n  llmlens log -f --stream\n"
            "  llmlens log --active"
        ),
    )  # fmt: skip
    log.add_argument("--limit", type=COUNT, default=50, help="rows per page (default 50)")
    log.add_argument(
        "--cursor", type=CURSOR, help="continue after this cursor (printed under the previous page)"
    )
    log.add_argument("-f", "--follow", action="store_true", help="keep printing new rows until Ctrl-C")
    log.add_argument(
        "--active", action="store_true", help="the requests in flight now (started, not yet ended) instead"
    )

    show = commands.add_parser(
        "show", parents=[common, as_json], formatter_class=fmt,
        help="one request in detail, with the span tree of its trace",
        description=(
            "Show every column of one request and the span tree of its trace (its parent and child spans,\n"
            "and any other LLM requests of the same trace).\n\n"
            "ID is the request id from `llmlens log`, TRACE_ID/SPAN_ID, a trace id (its outermost request)\n"
            "or a span id."
        ),
    )  # fmt: skip
    show.add_argument(
        "id", metavar="ID", type=REQUEST_ID, help="request id, TRACE_ID/SPAN_ID, TRACE_ID or SPAN_ID"
    )

    stats = commands.add_parser(
        "stats", parents=[common, as_json], formatter_class=fmt,
        help="totals, tokens, cost and latency percentiles, per provider or model",
        description=(
            "Totals (requests, errors, streaming split, tokens by kind, cost, durations) and p50/p95/p99\n"
            "duration and time to first chunk, overall and per provider or model. Read from the per-minute\n"
            "rollups, so old requests count even after the request log has pruned them; a window is made\n"
            "of whole minutes. Percentiles are exact for windows up to 20,000 requests, else from the\n"
            "rollup histograms (within 25%).\n\n"
            "examples:\n  llmlens stats\n  llmlens stats --by model --since 1h"
        ),
    )  # fmt: skip
    stats.add_argument(
        "--by", choices=("provider", "model"), default="provider", help="group by (default provider)"
    )
    stats.add_argument(
        "--since",
        type=WHEN,
        metavar="WHEN",
        help="from: 30s, 15m, 1h, 7d ago or an ISO time (default: everything recorded)",
    )
    stats.add_argument("--until", type=WHEN, metavar="WHEN", help="to (default: now)")

    health = commands.add_parser(
        "health", parents=[common, as_json], formatter_class=fmt,
        help="per-provider health: ok, degraded or critical",
        description=(
            "Each provider's status from its recent requests only (the last --window, default 5 minutes):\n"
            "degraded or critical when the error rate or the p95 latency (time to first chunk for streams,\n"
            "else duration) reaches a threshold. A provider recovers on its own as its errors age out of\n"
            "the window. Thresholds: LLMLENS_HEALTH_WINDOW_S, LLMLENS_HEALTH_MIN_REQUESTS,\n"
            "LLMLENS_HEALTH_DEGRADED_ERROR_RATE, LLMLENS_HEALTH_CRITICAL_ERROR_RATE,\n"
            "LLMLENS_HEALTH_DEGRADED_P95_MS, LLMLENS_HEALTH_CRITICAL_P95_MS (docs/store.md)."
        ),
    )  # fmt: skip
    health.add_argument("--window", type=DURATION, metavar="DURATION", help="how far back: 30s, 5m, 1h")
    health.add_argument(
        "--fail-on", choices=("degraded", "critical"),
        help="exit with status 1 when the overall status is this bad or worse (for monitors)",
    )  # fmt: skip

    prune = commands.add_parser(
        "prune", parents=[common, as_json], formatter_class=fmt,
        help="apply the retention limits now (and --vacuum to shrink the file)",
        description=(
            "Delete what the retention settings do not keep: successes beyond LLMLENS_STORE_MAX_SUCCESS\n"
            "(default 50,000), errors beyond LLMLENS_STORE_MAX_ERRORS (default 10,000), requests and\n"
            "rollups older than LLMLENS_STORE_MAX_AGE_DAYS (default 90); 0 means no limit. The writer does\n"
            "this on its own every few seconds; --vacuum also gives the space back to the file system."
        ),
    )  # fmt: skip
    prune.add_argument("--vacuum", action="store_true", help="rewrite the file afterwards to free the space")

    export = commands.add_parser(
        "export", parents=[common, filters], formatter_class=fmt,
        help="write request rows as JSON Lines or CSV",
        description=(
            "Write every matching request row, oldest first, to stdout or --output, streaming (the store\n"
            "is read one page at a time). JSON Lines keep every column with attributes as an object; CSV\n"
            "has one column per field with attributes as JSON text.\n\n"
            "example:\n  llmlens export --format csv --since 7d --provider openai --output openai.csv"
        ),
    )  # fmt: skip
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="default jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    db = commands.add_parser(
        "db", help="the store file itself: `llmlens db info`",
        description="Commands about the store file. `llmlens db info`: sizes, row counts, schema, retention.",
    )  # fmt: skip
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    db_commands.add_parser(
        "info", parents=[common, as_json],
        help="file, WAL and SHM sizes, row counts, time span, schema version, pages, retention",
        description="File, WAL and SHM sizes, row counts per class, oldest and newest request, schema "
        "version, page and free-page counts, and the retention caps from the environment.",
    )  # fmt: skip


# --- running them ----------------------------------------------------------------------------------


def _path(args: argparse.Namespace) -> str:
    from llmlens.store.paths import default_db_path

    return getattr(args, "db", None) or getattr(args, "db_global", None) or default_db_path()


def _open(path: str, write: bool = False) -> sqlite3.Connection:
    from llmlens.store.schema import StoreError, open_store

    if write:
        return open_store(path, create=False)
    try:
        return open_store(path, readonly=True)
    except StoreError as error:
        if "older schema" not in str(error):
            raise
        return open_store(path, create=False)  # migrate once, then read


def run(args: argparse.Namespace) -> int:
    """Run a store subcommand; returns the exit status."""
    from llmlens.settings import SettingsError
    from llmlens.store.queries import QueryError
    from llmlens.store.schema import StoreError

    handlers: dict[str, Callable[[argparse.Namespace, str], int]] = {
        "log": _log, "show": _show, "stats": _stats, "health": _health, "prune": _prune, "export": _export,
        "db": _db,
    }  # fmt: skip
    path = _path(args)
    try:
        return handlers[args.command](args, path)
    except (StoreError, QueryError, SettingsError, _Fail) as error:
        _error(str(error))
        return 2
    except sqlite3.Error as error:
        _error(f"{path}: {error}")
        return 2
    except KeyboardInterrupt:  # (--follow ends on Ctrl-C with status 0; see _follow)
        return 130
    except BrokenPipeError:  # `llmlens log | head`
        quiet_stdout()
        return 0


def quiet_stdout() -> None:
    """After the reader of stdout left (`llmlens ... | head`): send what is left to /dev/null, so the
    interpreter's flush of stdout at exit does not print a BrokenPipeError."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _error(message: str) -> None:
    print(f"llmlens: {message}", file=sys.stderr)


def _print_json(value: Any) -> None:
    from llmlens.store.formats import dumps

    sys.stdout.write(dumps(value) + "\n")


def _filters(args: argparse.Namespace) -> Any:
    from llmlens.store.queries import Filters

    return Filters(
        since_ns=args.since, until_ns=args.until, model=args.model, provider=args.provider,
        status=args.status, api_key_label=args.api_key_label, operation=args.operation, stream=args.stream,
        error_text=args.error_text, trace_id=args.trace_id,
    ).validate()  # fmt: skip


# log ------------------------------------------------------------------------------------------------


def _log(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    if args.active:
        return _active(args, path)
    filters = _filters(args)
    conn = _open(path)
    if args.follow:
        return _follow(conn, filters, args)
    page = queries.request_log(conn, filters, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(page.to_dict())
        return 0
    if not page.rows:
        print("no requests" + (" match these filters" if filters.to_dict() else " recorded yet"))
        return 0
    print(formats.log_table(page.rows))
    footer = f"{len(page.rows)} rows"
    if page.next_cursor is not None:
        footer += f"; older: --cursor {page.next_cursor}"
    print(f"({footer}; details: llmlens show ID)")
    return 0


# What a request in flight does not have yet, or what a snapshot cannot do: refused with --active.
_NOT_ACTIVE = (("--cursor", "cursor"), ("--since", "since"), ("--until", "until"),
               ("--status", "status"), ("--key", "api_key_label"), ("--error", "error_text"))  # fmt: skip


def _active(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries
    from llmlens.store.query_common import iso

    if args.follow:
        raise _Fail("--active prints one snapshot, no --follow (to refresh: watch -n 1 llmlens log --active)")
    refused = [flag for flag, name in _NOT_ACTIVE if getattr(args, name) is not None]
    if refused:
        raise _Fail(f"--active shows requests in flight: {', '.join(refused)} cannot apply (see --help)")
    now = time.time_ns()
    found = queries.active_requests(_open(path), now)
    matching = [
        r for r in found
        if (args.provider is None or r.provider == args.provider)
        and (args.model is None or r.request_model == args.model)
        and (args.operation is None or r.operation == args.operation)
        and (args.stream is None or r.stream == args.stream)
        and (args.trace_id is None or r.trace_id == args.trace_id)
    ]  # fmt: skip
    shown = matching[: args.limit]
    if args.json:
        _print_json({"rows": [r.to_dict() for r in shown], "now_ns": now, "now": iso(now)})
        return 0
    if not shown:
        print("no requests in flight" + (" match these filters" if len(found) else ""))
        return 0
    print(formats.active_table(shown))
    processes = len({(r.hostname, r.pid) for r in shown})
    more = f" of {len(matching)}" if len(shown) < len(matching) else ""
    print(f"({len(shown)}{more} requests in flight in {processes} process{'es' if processes > 1 else ''}, "
          f"as of {formats.local_time(now)})")  # fmt: skip
    return 0


def _follow(conn: sqlite3.Connection, filters: Any, args: argparse.Namespace) -> int:
    from llmlens.store import formats, queries

    out = sys.stdout
    try:
        rows = list(reversed(queries.request_log(conn, filters, limit=args.limit).rows))
        last = max([queries.latest_id(conn), *(r["id"] for r in rows)])
        lines = formats.LogLines(rows)
        if args.json:
            formats.write_jsonl(rows, out)
        else:
            print(lines.header())
            for row in rows:
                print(lines.line(row))
        out.flush()
        while True:
            time.sleep(POLL_S)
            top = queries.latest_id(conn)
            if top <= last:
                continue
            batch = 1000
            new = queries.new_requests(conn, filters, last, limit=batch)
            if args.json:
                formats.write_jsonl(new, out)
            else:
                for row in new:
                    out.write(lines.line(row) + "\n")
            out.flush()
            last = new[-1]["id"] if len(new) == batch else max(top, new[-1]["id"] if new else last)
    except KeyboardInterrupt:
        return 0


# show -----------------------------------------------------------------------------------------------


def _show(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    conn = _open(path)
    detail = queries.get_request(conn, args.id)
    if detail is None:
        raise _Fail(f"no request {args.id!r} in {path}")
    if args.json:
        _print_json(detail.to_dict())
        return 0
    r = detail.request
    lines: list[tuple[str, str]] = [
        ("request", f"{r['id']}  trace {r['trace_id']}  span {r['span_id']}"),
        ("time", f"{formats.local_time(r['start_ns'], millis=True)}  ({r['start_time']})"),
        ("duration", formats.duration(r["duration_ms"])),
        ("span", f"{r['span_name']}  ({r['span_kind']})"),
        ("operation", r["operation"] or ""),
        ("provider", " ".join(p for p in (r["provider"] or "", _server(r)) if p)),
        ("model", formats.model_text(r)),
        ("status", formats.status_text(r)),
    ]
    if r["error_message"]:
        lines.append(("error", r["error_message"]))
    if r["stream"]:
        stream = f"yes, {formats.count(r['chunk_count'])} chunks, {r['stream_outcome'] or 'no outcome'}"
        if r["ttfc_ms"] is not None:
            stream += f", first chunk after {formats.duration(r['ttfc_ms'])}"
        lines.append(("stream", stream))
    tokens = []
    if r["input_tokens"] is not None:
        extra = [f"{k} {formats.count(r[c])}" for k, c in (("cache read", "cache_read_tokens"),
                 ("cache write", "cache_write_tokens")) if r[c]]  # fmt: skip
        tokens.append(f"in {formats.count(r['input_tokens'])}" + (f" ({', '.join(extra)})" if extra else ""))
    if r["output_tokens"] is not None:
        reasoning = f" (reasoning {formats.count(r['reasoning_tokens'])})" if r["reasoning_tokens"] else ""
        tokens.append(f"out {formats.count(r['output_tokens'])}{reasoning}")
    lines.append(("tokens", "  ".join(tokens) or "not reported"))
    lines.append(("cost", formats.request_cost(r)))
    for label, value in (
        ("finish", ", ".join(r["finish_reasons"])),
        ("response id", r["response_id"]),
        ("api key", r["api_key_label"]),
        ("client", r["client_ip"]),
        ("formats", " -> ".join(f for f in (r["source_format"], r["target_format"]) if f)),
        ("service", r["service_name"]),
        ("profile", r["profile_id"]),
    ):
        if value:
            lines.append((label, str(value)))
    for key, value in sorted(r["attributes"].items()):
        lines.append((key, str(value)))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    if detail.phases is not None:  # a proxied request: where its time went (store/phases.py)
        print("\nphases" if detail.phases else "\nphases: none that the recorded spans can time")
        for line in formats.phase_lines(detail.phases):
            print(line)
    if detail.profile is not None:  # llmlens.profiling: the summary, and how to open it
        print("\nprofile")
        for line in formats.profile_summary_lines(detail.profile):
            print(f"  {line}")
        print(f"  open it: {formats.profile_open_hint(detail.profile['id'], getattr(args, 'db', None))}")
    print(f"\nspan tree ({detail.span_count} spans recorded for this trace)")
    for line in formats.tree_lines(detail):
        print(line)
    return 0


def _server(r: dict[str, Any]) -> str:
    if not r.get("server_address"):
        return ""
    port = r.get("server_port")
    return f"({r['server_address']}{':' + str(port) if port else ''})"


# stats ----------------------------------------------------------------------------------------------


def _stats(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    conn = _open(path)
    since, until = args.since, args.until
    total = queries.totals(conn, since, until)
    groups = queries.breakdown(conn, since, until, by=args.by)
    duration = queries.percentiles(conn, since, until, metric="duration", by=args.by)
    ttfc = queries.percentiles(conn, since, until, metric="ttfc", by=args.by)
    if args.json:
        _print_json(
            {
                "window": total.window.to_dict(),
                "totals": total.totals.to_dict(),
                "by": args.by,
                "groups": [g.to_dict() for g in groups.groups],
                "percentiles": {"duration": duration.to_dict(), "ttfc": ttfc.to_dict()},
            }
        )
        return 0
    t = total.totals
    when = "everything recorded" if since is None and until is None else _window_text(total.window)
    print(f"llmlens stats: {when}")
    if not t.requests:
        print("no requests in this window")
        return 0
    c, d = formats.count, formats.duration
    rows = [
        ("requests", f"{c(t.requests)}  (streaming {c(t.streaming)}, non-streaming {c(t.non_streaming)})"),
        ("errors", f"{c(t.errors)}  ({formats.pct(t.error_rate)})"),
        ("input tokens", f"{c(t.input_tokens)}  (cache read {c(t.cache_read_tokens)}, "
                         f"cache write {c(t.cache_write_tokens)})"),
        ("output tokens", f"{c(t.output_tokens)}  (reasoning {c(t.reasoning_tokens)})"),
        ("cost", formats.total_cost(t.cost_usd, t.unpriced_requests, t.requests)),
        ("duration", f"avg {d(t.avg_duration_ms)}  {_pcts(duration.overall.values)}  "
                     f"max {d(t.max_duration_ms)}"),
    ]  # fmt: skip
    if t.ttfc_count:
        rows.append(("first chunk", f"avg {formats.duration(t.avg_ttfc_ms)}  " + _pcts(ttfc.overall.values)))
    rows.append(("last request", formats.local_time(t.last_ns)))
    rows.append(("percentiles", duration.note))
    for label, value in rows:
        print(f"{label:<14} {value}")
    print()
    table_rows = []
    for g in groups.groups:
        gt = g.totals
        gp = duration.groups.get(g.key)
        values = gp.values if gp else {}
        table_rows.append([
            g.key or "(none)", c(gt.requests), c(gt.errors), formats.pct(gt.error_rate), c(gt.streaming),
            c(gt.input_tokens), c(gt.output_tokens),
            formats.total_cost(gt.cost_usd, gt.unpriced_requests, gt.requests), d(gt.avg_duration_ms),
            *(d(values.get(k)) for k in ("p50", "p95", "p99")), formats.local_time(gt.last_ns),
        ])  # fmt: skip
    headers = [args.by, "requests", "errors", "err%", "streams", "in tokens", "out tokens", "cost", "avg",
               "p50", "p95", "p99", "last"]  # fmt: skip
    print(formats.table(headers, table_rows, right=tuple(range(1, 12))))
    return 0


def _pcts(values: dict[str, float | None]) -> str:
    from llmlens.store.formats import duration

    return "  ".join(f"{k} {duration(v)}" for k, v in values.items())


def _window_text(window: Any) -> str:
    from llmlens.store.formats import local_time

    start = local_time(window.start_ns) if window.start_ns is not None else "the start"
    end = local_time(window.end_ns) if window.end_ns is not None else "now"
    return f"{start} to {end} (whole minutes)"


# health ---------------------------------------------------------------------------------------------


def _health(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    thresholds = queries.HealthThresholds.from_env()
    conn = _open(path)
    report = queries.provider_health(conn, window_s=args.window, thresholds=thresholds)
    level = {"ok": 0, "degraded": 1, "critical": 2}
    failed = args.fail_on is not None and level[report.status] >= level[args.fail_on]
    if args.json:
        _print_json(report.to_dict())
        return 1 if failed else 0
    t = report.thresholds
    print(f"llmlens health: {report.status}  (requests of the last {report.window_s:g} s; degraded at "
          f"{t.degraded_error_rate:.0%} errors or p95 {formats.duration(t.degraded_p95_ms)}, critical at "
          f"{t.critical_error_rate:.0%} or {formats.duration(t.critical_p95_ms)})")  # fmt: skip
    if not report.providers:
        print("no providers seen in the last 24 hours")
        return 1 if failed else 0
    rows = []
    for h in report.providers.values():
        last = ""
        if h.last_error_ns is not None:
            last = f"{formats.local_time(h.last_error_ns)} {_clip(h.last_error or '', 50)}"
        rows.append([
            h.provider or "(none)", h.status, formats.count(h.requests), formats.count(h.errors),
            formats.pct(h.error_rate) if h.requests else "", formats.duration(h.p95_latency_ms),
            formats.count(h.errors_last_hour), last, "; ".join(h.reasons),
        ])  # fmt: skip
    headers = ["provider", "status", "requests", "errors", "err%", "p95", "errors 1h", "last error", "why"]
    print(formats.table(headers, rows, right=(2, 3, 4, 5, 6)))
    for h in report.providers.values():
        if h.clears_ns is not None:
            print(f"{h.provider}: the errors now in the window age out at {formats.local_time(h.clears_ns)}")
    return 1 if failed else 0


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# prune ----------------------------------------------------------------------------------------------


def _prune(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats
    from llmlens.store.queries import file_sizes
    from llmlens.store.retention import Retention, prune, vacuum

    retention = Retention.from_env()
    conn = _open(path, write=True)
    _check_integrity(conn, path)  # deleting from a damaged file can only damage it more
    result = prune(conn, retention)
    report: dict[str, Any] = {
        "retention": {"max_success": retention.max_success, "max_errors": retention.max_errors,
                      "max_age_days": retention.max_age_days},
        "deleted": {"success_over_cap": result.deleted_success, "errors_over_cap": result.deleted_errors,
                    "older_than_max_age": result.deleted_by_age, "total": result.total},
    }  # fmt: skip
    if args.vacuum:
        before = sum(file_sizes(path))
        vacuum(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # VACUUM wrote the new file into the WAL
        after = sum(file_sizes(path))
        report["vacuum"] = {"bytes_before": before, "bytes_after": after}
    conn.close()
    if args.json:
        _print_json(report)
        return 0

    def cap(value: float, unit: str) -> str:
        return "no limit" if not value else f"{value:,g} {unit}"

    print(f"retention: {cap(retention.max_success, 'successes')}, {cap(retention.max_errors, 'errors')}, "
          f"{cap(retention.max_age_days, 'days')}")  # fmt: skip
    print(
        f"deleted {result.total:,} requests: {result.deleted_success:,} successes over the cap, "
        f"{result.deleted_errors:,} errors over the cap, {result.deleted_by_age:,} older than the age limit"
    )
    if args.vacuum:
        v = report["vacuum"]
        print(f"vacuum: {formats.bytes_(v['bytes_before'])} -> {formats.bytes_(v['bytes_after'])}")
    return 0


def _check_integrity(conn: sqlite3.Connection, path: str) -> None:
    """Fail (like a query that meets a damaged page) unless PRAGMA quick_check finds every page sound."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        detail = next((line for p in problems for line in str(p).splitlines() if "***" not in line), "")
        raise _Fail(f"{path}: database disk image is malformed" + (f" ({detail})" if detail else ""))


# export ---------------------------------------------------------------------------------------------


def _export(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    filters = _filters(args)
    conn = _open(path)
    rows = queries.iter_requests(conn, filters, batch_size=1000)
    write = formats.write_csv if args.format == "csv" else formats.write_jsonl
    if not args.output or args.output == "-":
        write(rows, sys.stdout)
        sys.stdout.flush()
        return 0
    partial = args.output + ".partial"
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            n = write(rows, out)
        os.replace(partial, args.output)
    except OSError as error:
        raise _Fail(f"cannot write {args.output}: {error.strerror or error}") from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    print(f"exported {n:,} requests to {args.output}", file=sys.stderr)
    return 0


# db info --------------------------------------------------------------------------------------------


def _db(args: argparse.Namespace, path: str) -> int:
    from llmlens.store import formats, queries

    conn = _open(path)
    s = queries.storage_stats(conn, path)
    missing = queries.missing_indexes(conn)
    if args.json:
        _print_json({**s.to_dict(), "missing_indexes": missing})
        return 0
    r = s.retention
    local = formats.local_time

    def cap(value: Any, unit: str) -> str:
        return "no limit" if not value else f"{value:,g} {unit}"

    retention = r.get("error") or ", ".join(
        (cap(r["max_success"], "successes"), cap(r["max_errors"], "errors"), cap(r["max_age_days"], "days"))
    )
    rows = [
        ("store", f"{s.path}"),
        ("schema", f"version {s.schema_version} (this llmlens knows {s.schema_version_known})"),
        ("size", f"{formats.bytes_(s.total_bytes)}  (file {formats.bytes_(s.db_bytes)}, WAL "
                 f"{formats.bytes_(s.wal_bytes)}, SHM {formats.bytes_(s.shm_bytes)})"),
        ("requests", f"{formats.count(s.requests)}  ({formats.count(s.success_requests)} successes, "
                     f"{formats.count(s.error_requests)} errors)"),
        ("time span", f"{local(s.oldest_request_ns)} to {local(s.newest_request_ns)}"
                      if s.requests else "empty"),
        ("spans", f"{formats.count(s.spans)} other spans of the recorded traces"),
        ("profiles", f"{formats.count(s.profiles)} (llmlens profile list)"),
        ("rollups", f"{formats.count(s.rollup_rows)} per-minute and {formats.count(s.rollup_hour_rows)} "
                    "per-hour rows"
                    + (f", since {formats.local_time(s.oldest_rollup_ns)}" if s.oldest_rollup_ns else "")),
        ("pages", f"{formats.count(s.page_count)} x {s.page_size} B, {formats.count(s.freelist_count)} free "
                  "(llmlens prune --vacuum gives free pages back)"),
        ("journal", s.journal_mode),
        ("retention", retention),
    ]  # fmt: skip
    if missing:
        rows.append(("indexes", "missing " + ", ".join(missing) + " (request-log filters are slower)"))
    for label, value in rows:
        print(f"{label:<10} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmlens.store.cli ...` (the same as `llmlens ...` for these commands)."""
    parser = Parser(prog="llmlens")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True), parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
