"""How llmlens and the peer instrumentations end a streamed call's span, for every way a stream can end.

    benchmarks/peers-env                         # once: .venv-peers and .venv-peers-legacy
    .venv/bin/python benchmarks/stream_matrix.py [--only llmlens,openlit,...] [--json FILE]

For each instrumentation (peer_setup.INSTRUMENTATIONS but the baselines), one process of its own, in its
environment: the fake provider (`llmlens.demo.fake_server`) on 127.0.0.1, the real openai and anthropic
clients (anthropic's own tracing off), a `SimpleSpanProcessor` into an `InMemorySpanExporter`. Each exit
path runs on a fresh stream of 8 content chunks (openai with ``include_usage``); the spans are read at
the exit point, with the stream object still referenced, then once more after the stream is dropped and
`gc.collect()` has run. A cell gives the LLM spans finished at the exit point, their status (OK, ERROR,
UNSET), whether token usage is on one of them and whether an exception is recorded; "after GC: ..."
follows when collecting the garbage changed that. The rows where the exit point is itself "drop it and
collect" (break then GC, a raw response never parsed) are read after the collection.

An exception that is not the stream's own (anything but the SDK's connection or API error mid-stream,
or the cancellation) is a failure of the instrumentation: the cell says "raises" and its type.

Prints one Markdown table per SDK (rows: exit path; columns: instrumentation) and the versions.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import gc
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peer_setup

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Say hello."}]
CHUNKS = "chunks=8"

# exit path -> (row label, SDKs it applies to)
PATHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "full": ("read to the end", peer_setup.SDKS),
    "break_gc": ("`break`, then `del` + `gc.collect()`", peer_setup.SDKS),
    "with_break": ("`with stream:` + `break`", peer_setup.SDKS),
    "close": ("`close()` after the first chunk", peer_setup.SDKS),
    "cut": ("connection cut mid-stream (after 4 events)", peer_setup.SDKS),
    "error_event": ("`event: error` mid-stream", ("anthropic",)),
    "async_full": ("async: read to the end", peer_setup.SDKS),
    "async_with_break": ("async: `async with` + `break`", peer_setup.SDKS),
    "cancel": ("async: task cancelled mid-stream", peer_setup.SDKS),
    "raw_parsed": ("`with_raw_response`, `.parse()`, read to the end", peer_setup.SDKS),
    "raw_dropped": ("`with_raw_response`, never parsed, dropped + GC", peer_setup.SDKS),
}


# --- worker: one instrumentation ----------------------------------------------------------------------


class Api:
    """One SDK's streaming calls against the fake provider."""

    def __init__(self, sdk: str, base_url: str) -> None:
        self.sdk = sdk
        if sdk == "openai":
            import openai

            self.client = openai.OpenAI(api_key="sk-matrix", base_url=base_url, max_retries=0)
            self._async = lambda: openai.AsyncOpenAI(api_key="sk-matrix", base_url=base_url, max_retries=0)
        else:
            import anthropic

            root = base_url.rsplit("/v1", 1)[0]
            kwargs = peer_setup.anthropic_kwargs()
            self.client = anthropic.Anthropic(api_key="sk-ant-matrix", base_url=root, max_retries=0, **kwargs)
            self._async = lambda: anthropic.AsyncAnthropic(
                api_key="sk-ant-matrix", base_url=root, max_retries=0, **kwargs
            )
        self.aclient: Any = None

    def new_async_client(self) -> None:
        """An async client for one event loop: pooled connections cannot outlive their loop."""
        self.aclient = self._async()

    def _args(self, scenario: str) -> dict[str, Any]:
        headers = {"x-fake-scenario": f"{CHUNKS},{scenario}" if scenario else CHUNKS}
        if self.sdk == "openai":
            return {
                "model": MODEL, "messages": MESSAGES, "stream": True,
                "stream_options": {"include_usage": True}, "extra_headers": headers,
            }  # fmt: skip
        return {
            "model": CLAUDE, "max_tokens": 256, "messages": MESSAGES,
            "stream": True, "extra_headers": headers,
        }  # fmt: skip

    def _create(self, client: Any) -> Any:
        return (client.chat.completions if self.sdk == "openai" else client.messages).create

    def stream(self, scenario: str = "") -> Any:
        return self._create(self.client)(**self._args(scenario))

    async def astream(self, scenario: str = "") -> Any:
        return await self._create(self.aclient)(**self._args(scenario))

    def raw(self) -> Any:
        resource = self.client.chat.completions if self.sdk == "openai" else self.client.messages
        return resource.with_raw_response.create(**self._args(""))


def stream_errors() -> tuple[type[BaseException], ...]:
    """What a stream itself raises when the server cuts it or sends an error: not the instrumentation's."""
    import anthropic
    import openai

    errors: list[type[BaseException]] = [openai.APIError, anthropic.APIError]
    for module in ("httpx", "httpx2"):
        try:
            errors.append(__import__(module).TransportError)
        except ImportError:
            pass
    return tuple(errors)


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def run_path(path: str, api: Api, snap: Callable[[], None]) -> None:
    """Run one exit path; call `snap` at its exit point, the stream still referenced."""
    if path == "full":
        stream = api.stream()
        _drain(stream)
        snap()
    elif path == "break_gc":
        stream = api.stream()
        for _ in stream:
            break
        del stream
        gc.collect()
        snap()
    elif path == "with_break":
        with api.stream() as stream:
            for _ in stream:
                break
        snap()
    elif path == "close":
        stream = api.stream()
        iterator = iter(stream)
        next(iterator)
        stream.close()
        snap()
    elif path in ("cut", "error_event"):
        stream = api.stream("abort_after=4" if path == "cut" else "stream_error=overloaded_error")
        try:
            _drain(stream)
        except stream_errors():
            pass
        snap()
    elif path == "raw_parsed":
        raw = api.raw()
        stream = raw.parse()
        _drain(stream)
        snap()
    elif path == "raw_dropped":
        raw = api.raw()
        del raw
        gc.collect()
        snap()
    else:
        asyncio.run(run_async_path(path, api, snap))


async def run_async_path(path: str, api: Api, snap: Callable[[], None]) -> None:
    api.new_async_client()
    if path == "async_full":
        stream = await api.astream()
        async for _ in stream:
            pass
        snap()
    elif path == "async_with_break":
        async with await api.astream() as stream:
            async for _ in stream:
                break
        snap()
    elif path == "cancel":
        kept: list[Any] = []
        first = asyncio.Event()

        async def consume() -> None:
            stream = await api.astream("chunk_delay_ms=50")
            kept.append(stream)
            async for _ in stream:
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        snap()
    await asyncio.sleep(0)


def describe(spans: list[Any]) -> dict[str, Any]:
    statuses = [s.status.status_code.name for s in spans]
    return {
        "spans": len(spans),
        "statuses": statuses,
        "tokens": any(peer_setup.has_tokens(s) for s in spans),
        "exception": any(e.name == "exception" for s in spans for e in s.events),
    }


def worker(name: str) -> int:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmlens.demo.fake_server import FakeProvider

    exporter = InMemorySpanExporter()
    instrumentation = peer_setup.INSTRUMENTATIONS[name]
    peer_setup.instrument(name, exporter, "simple")
    results: dict[str, dict[str, Any]] = {}
    with FakeProvider() as provider:
        for sdk in instrumentation.sdks:
            api = Api(sdk, provider.base_url)
            for path, (_label, sdks) in PATHS.items():
                if sdk not in sdks:
                    continue
                gc.collect()
                exporter.clear()
                at_exit: dict[str, Any] = {}

                def snap(at_exit: dict[str, Any] = at_exit) -> None:
                    at_exit.update(describe(peer_setup.llm_spans(exporter.get_finished_spans())))

                cell: dict[str, Any] = {}
                start = time.perf_counter()
                try:
                    run_path(path, api, snap)
                except Exception as error:  # the instrumentation broke the user's code
                    cell["raises"] = f"{type(error).__name__}: {str(error)[:120]}"
                cell["seconds"] = round(time.perf_counter() - start, 3)
                gc.collect()
                cell["at_exit"] = at_exit
                cell["after_gc"] = describe(peer_setup.llm_spans(exporter.get_finished_spans()))
                results[f"{sdk}/{path}"] = cell
    print(json.dumps({"results": results, "versions": peer_setup.versions(instrumentation.packages)}))
    return 0


# --- parent: one worker per instrumentation, then the tables --------------------------------------------


def cell_text(state: dict[str, Any]) -> str:
    if not state:
        return "-"
    n = state["spans"]
    if n == 0:
        return "0 spans"
    statuses = state["statuses"]
    status = statuses[0] if len(set(statuses)) == 1 else "+".join(statuses)
    text = f"{n} span{'s' if n > 1 else ''}, {status}"
    if state["tokens"]:
        text += ", tokens"
    if state["exception"]:
        text += ", exception"
    return text


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "n/a"
    text = cell_text(result["at_exit"])
    final = cell_text(result["after_gc"])
    if final != text:
        text += f"; after GC: {final}"
    if "raises" in result:
        text = f"**raises {result['raises'].split(':')[0]}**; " + text
    return text


def run_workers(names: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names:
        print(f"  {name}...", file=sys.stderr, flush=True)
        python = peer_setup.python_of(peer_setup.INSTRUMENTATIONS[name])
        proc = subprocess.run(
            [str(python), __file__, "--worker", name], capture_output=True, text=True, timeout=600
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            peer_setup.fail(
                f"stream_matrix: the {name} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        out[name] = json.loads(lines[-1])
    return out


def render(names: list[str], data: dict[str, dict[str, Any]]) -> str:
    labels = [peer_setup.INSTRUMENTATIONS[n].label for n in names]
    lines = []
    for sdk in peer_setup.SDKS:
        lines += [f"**{sdk}**", "", "| exit path | " + " | ".join(labels) + " |"]
        lines.append("|---" * (len(names) + 1) + "|")
        for path, (label, sdks) in PATHS.items():
            if sdk not in sdks:
                continue
            cells = [cell(data[n]["results"].get(f"{sdk}/{path}")) for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def header(names: list[str], data: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"- {peer_setup.tree_label()}, {_dt.date.today().isoformat()}, "
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "- versions:",
    ]
    for name in names:
        versions = ", ".join(f"{k} {v}" for k, v in data[name]["versions"].items())
        lines.append(f"  - {peer_setup.INSTRUMENTATIONS[name].label}: {versions}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma-separated instrumentations (default: all but the baselines)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    names = [n for n in peer_setup.INSTRUMENTATIONS if n not in peer_setup.BASELINES]
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in peer_setup.INSTRUMENTATIONS]
        if unknown:
            known = ", ".join(peer_setup.INSTRUMENTATIONS)
            parser.error(f"unknown instrumentation(s): {', '.join(unknown)} (known: {known})")
    missing = peer_setup.missing_envs(names)
    if missing:
        parser.error(f"missing virtual environment(s) {', '.join(missing)}: run benchmarks/peers-env first")
    data = run_workers(names)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(header(names, data))
    print()
    print(render(names, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
