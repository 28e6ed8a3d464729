"""llmlens overhead in CPU instructions, counted by valgrind's callgrind: repeatable where seconds are not.

    python benchmarks/instructions.py [--seeds 1,2] [--calls N] [--cache-sim]

The wall-clock benchmark (`overhead.py`) is the one the targets are set in, but on a shared virtual
machine its figures move by a factor of two from one hour to the next. Instruction counts do not: the
same tree gives the same count to within a few per cent, whatever else runs on the machine. This script
runs the same workloads as `overhead.py` (the real openai SDK, an httpx2 MockTransport serving canned
bodies, SDK providers with a BatchSpanProcessor and an InMemoryMetricReader) inside one process under
`valgrind --tool=callgrind`, and counts, for `sdk` and `llmlens` modes alike, the instructions of N
calls of each workload, by callgrind client requests around each block (a two-function C shim compiled
here with the system compiler and valgrind's headers). Both modes run in the same process, so they share
one memory layout and one hash seed; the script repeats that for several seeds
(PYTHONHASHSEED), since a layout alone can move a count by some per cent.

Reported per seed: instructions per call added by llmlens (non-stream, stream) and per chunk,
(stream Δ - non-stream Δ) / 34, the formula of `overhead.py`. Needs valgrind and a C compiler
(Debian: `apt-get install valgrind gcc`); a run takes about two minutes per seed on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENT_CHUNKS = 34

_SHIM = r"""
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""

# Runs inside valgrind: the workloads of overhead.py, each block between a zero and a dump.
_CHILD = r"""
import ctypes, gc, sys, time
sys.path.insert(0, {here!r})
import httpx2, openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
import overhead
from llmlens import Instrumentor

shim = ctypes.CDLL({shim!r})
handler, chunks = overhead.build_handler()
client = openai.OpenAI(api_key="sk-bench", base_url="http://127.0.0.1:9/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(overhead.DiscardingExporter()))
meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
trace.set_tracer_provider(tracer_provider)
metrics.set_meter_provider(meter_provider)

def call():
    client.chat.completions.create(model=overhead.MODEL, messages=overhead.MESSAGES)

def stream():
    for _ in client.chat.completions.create(model=overhead.MODEL, messages=overhead.MESSAGES, stream=True,
                                            stream_options=overhead.STREAM_OPTIONS):
        pass

calls = {calls}
# Warm up both modes (imports, caches, the price data llmlens loads in a background thread).
Instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
for _ in range(10):
    call(); stream()
Instrumentor().uninstrument()
time.sleep(0.5)
for rep in range(2):
    for mode in ("sdk", "llmlens"):
        if mode == "llmlens":
            Instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        for name, fn in (("call", call), ("stream", stream)):
            for _ in range(5):
                fn()
            gc.collect()
            shim.cg_zero()
            for _ in range(calls):
                fn()
            shim.cg_dump(f"{{mode}}-{{name}}-{{rep}}".encode())
        if mode == "llmlens":
            Instrumentor().uninstrument()
"""


def build_shim(directory: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        raise SystemExit(
            "instructions.py needs a C compiler and valgrind's headers (apt-get install valgrind gcc)"
        )
    source = directory / "cgshim.c"
    source.write_text(_SHIM)
    library = directory / "libcgshim.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def estimated_cycles(events: list[str], values: list[int]) -> int:
    """Callgrind's own cost estimate from its cache simulation: Ir + 10 x L1 misses + 100 x LL misses.

    Crude, but repeatable, and it charges what pure instruction counts miss: code and data that the
    SDK's work in between has evicted from the caches (llmlens's code runs cold, once per chunk).
    """
    padded = values + [0] * (len(events) - len(values))  # callgrind leaves out trailing zero columns
    count = dict(zip(events, padded, strict=True))
    l1 = count.get("I1mr", 0) + count.get("D1mr", 0) + count.get("D1mw", 0)
    ll = count.get("ILmr", 0) + count.get("DLmr", 0) + count.get("DLmw", 0)
    return count["Ir"] + 10 * l1 + 100 * ll


def run_seed(
    seed: int, calls: int, shim: Path, directory: Path, cache_sim: bool = False
) -> dict[tuple[str, str], float]:
    """Instructions (or, with `cache_sim`, estimated cycles) per call, best of two repetitions, for each
    (mode, workload) of one process."""
    script = directory / "child.py"
    script.write_text(_CHILD.format(here=str(HERE), shim=str(shim), calls=calls))
    out = directory / f"cg.{seed}"
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "LLMLENS_STORE": "off"}
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--cache-sim={'yes' if cache_sim else 'no'}",
         f"--callgrind-out-file={out}", sys.executable, str(script)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"the callgrind run failed (seed {seed}):\n{proc.stderr[-2000:]}")
    counts: dict[tuple[str, str], list[float]] = {}
    for part in directory.glob(f"cg.{seed}.*"):
        text = part.read_text(errors="replace")
        label = re.search(r"Client Request: (\S+)", text)
        events = re.search(r"^events: (.+)$", text, re.MULTILINE)
        total = re.search(r"^summary: ([\d ]+)$", text, re.MULTILINE)
        if label and total and events:
            mode, workload, _rep = label.group(1).split("-")
            cost = estimated_cycles(events.group(1).split(), [int(v) for v in total.group(1).split()])
            counts.setdefault((mode, workload), []).append(cost / calls)
    if len(counts) != 4:
        raise SystemExit(f"expected 4 measured blocks from callgrind, got {sorted(counts)}")
    return {key: min(values) for key, values in counts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", default="1,2", help="comma-separated PYTHONHASHSEED values (default 1,2)")
    parser.add_argument("--calls", type=int, default=10, help="calls per measured block (default 10)")
    parser.add_argument(
        "--cache-sim", action="store_true",
        help="simulate the caches and report callgrind's estimated cycles (Ir + 10 x L1 misses + 100 x LL "
        "misses) instead of instructions; slower",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py needs valgrind (apt-get install valgrind)")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error("--seeds takes integers separated by commas, e.g. 1,2,3")
    if not seeds or args.calls < 1:
        parser.error("--seeds needs at least one seed and --calls must be >= 1")
    per_chunk = []
    print("| seed | sdk non-stream | Δ non-stream | sdk stream | Δ stream | Δ per chunk |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        shim = build_shim(directory)
        for seed in seeds:
            print(f"  seed {seed}: running under callgrind...", file=sys.stderr, flush=True)
            c = run_seed(seed, args.calls, shim, directory, args.cache_sim)
            call_delta = c[("llmlens", "call")] - c[("sdk", "call")]
            stream_delta = c[("llmlens", "stream")] - c[("sdk", "stream")]
            chunk = (stream_delta - call_delta) / CONTENT_CHUNKS
            per_chunk.append(chunk)
            print(
                f"| {seed} | {c[('sdk', 'call')] / 1e6:.2f} M | +{call_delta / 1e3:.0f} k "
                f"| {c[('sdk', 'stream')] / 1e6:.2f} M | +{stream_delta / 1e3:.0f} k | {chunk / 1e3:.2f} k |"
            )
    unit = "estimated cycles" if args.cache_sim else "instructions"
    print(f"\nper chunk, mean over seeds: {statistics.mean(per_chunk) / 1e3:.2f} k {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
