"""Profiling: arms from outside the process, captures of real requests, profiles in the store, the views.

Real processes and real files: an instrumented application (tests/profiling_app.py) runs as its own
process against the fake provider on 127.0.0.1, `llmlens profile arm` runs as another, and the profiles
are read back from the SQLite file they share. In-process tests cover the exit paths of streams, the
proxy, sampling, retention, the thread policy and the views.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app_process import AppProcess, run_llmlens
from llmlens.core.profiling import SWITCH
from llmlens.demo.fake_server import FakeProvider
from llmlens.store import profiles as stored_profiles
from speedscope_schema import validate_speedscope

HI = [{"role": "user", "content": "Hi"}]


# --- helpers ------------------------------------------------------------------------------------------


class App(AppProcess):
    """tests/profiling_app.py in its own process."""

    def __init__(self, db: Path, base_url: str, **env: str) -> None:
        super().__init__("profiling_app.py", db, base_url, **env)

    def close(self) -> None:
        self.quit()


def read(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def session_of(db: Path, profile_id: int) -> Any:
    conn = sqlite3.connect(db)
    try:
        profile = stored_profiles.get_profile(conn, profile_id)
    finally:
        conn.close()
    assert profile is not None
    return stored_profiles.decode_session(profile)


def functions_in(session: Any) -> set[str]:
    return {info.split("\x00", 1)[0] for stack, _ in session.frame_records for info in stack}


def seconds_in(session: Any, function: str) -> float:
    return sum(
        t for stack, t in session.frame_records if any(i.split("\x00", 1)[0] == function for i in stack)
    )


def linked_profiles(db: Path) -> list[tuple[Any, ...]]:
    """(request id, response id, profile id, its trace/span match) of every profiled request row."""
    return read(
        db,
        "SELECT r.id, r.response_id, p.id, p.trace_id = r.trace_id AND p.span_id = r.span_id"
        " FROM requests AS r JOIN profiles AS p ON CAST(p.id AS TEXT) = r.profile_id ORDER BY r.id",
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "profiles.db"


@pytest.fixture
def profiled(instrument: Any, db: Path) -> Iterator[Any]:
    """llmlens instrumented in this process with its own store file; `arm(...)` as the Python API does."""
    from llmlens import profiling

    def start(**options: Any) -> Any:
        instrumentor = instrument(db_path=str(db), **options)
        assert SWITCH.path == str(db)
        return instrumentor

    yield start
    if db.exists():
        profiling.disarm(str(db))


def flush(instrumentor: Any) -> None:
    """Everything this process handed to its store is written."""
    del instrumentor
    store = SWITCH.sink
    assert store is not None and store.force_flush(10_000)


def wait_for_profiles(db: Path, count: int, instrumentor: Any, timeout: float = 5.0) -> None:
    """A proxied request ends (and hands over its profile) after its last byte reached the client."""
    deadline = time.monotonic() + timeout
    while True:
        flush(instrumentor)
        if read(db, "SELECT count(*) FROM profiles")[0][0] >= count or time.monotonic() > deadline:
            return
        time.sleep(0.02)


# --- arming from outside, across processes ------------------------------------------------------------


def test_an_arm_from_another_process_profiles_exactly_n_requests(db: Path, fake: FakeProvider) -> None:
    app = App(db, fake.base_url)
    try:
        app.ask("call")  # the app runs, and has made its store, before anyone arms
        armed = run_llmlens("profile", "arm", "--next", "3", db=db)
        assert armed.returncode == 0, armed.stderr
        assert "armed (arm 1): the next 3 of any request" in armed.stdout
        time.sleep(1.0)  # "within one second"
        ids = [app.ask("call")["response_id"] for _ in range(5)]
        assert app.ask("flush") == {"flushed": True}
    finally:
        app.close()
    linked = linked_profiles(db)
    assert len(read(db, "SELECT id FROM profiles")) == 3
    # The three that followed the arm, each linked to its own row by trace and span id.
    assert [(response_id, same) for _, response_id, _, same in linked] == [(i, 1) for i in ids[:3]]
    for _, _, profile_id, _ in linked:
        session = session_of(db, profile_id)
        assert "app_calling_code" in functions_in(session)  # a frame of the calling code
    status = run_llmlens("profile", "status", "--json", db=db)
    arm = json.loads(status.stdout)["recent"][0]
    assert (arm["requested"], arm["remaining"], arm["state"]) == (3, 0, "used up")


def test_two_processes_armed_for_three_keep_three_in_all(db: Path, fake: FakeProvider) -> None:
    apps = [App(db, fake.base_url), App(db, fake.base_url)]
    try:
        for app in apps:
            app.ask("call")
        assert run_llmlens("profile", "arm", "--next", "3", db=db).returncode == 0
        time.sleep(1.0)
        for _ in range(3):
            for app in apps:
                app.ask("call")
        for app in apps:
            assert app.ask("flush") == {"flushed": True}
    finally:
        for app in apps:
            app.close()
    assert len(read(db, "SELECT id FROM profiles")) == 3
    assert len(linked_profiles(db)) == 3
    assert read(db, "SELECT remaining FROM profile_arms") == [(0,)]


def test_a_streamed_calls_profile_covers_the_end_of_its_stream(db: Path, fake: FakeProvider) -> None:
    app = App(db, fake.base_url)
    try:
        app.ask("call")
        assert run_llmlens("profile", "arm", "--next", "1", db=db).returncode == 0
        time.sleep(1.0)
        app.ask("stream chunks=6,chunk_delay_ms=20")
        app.ask("flush")
    finally:
        app.close()
    ((request_id, _, profile_id, same),) = linked_profiles(db)
    assert same
    ((duration_ms, stream, outcome),) = read(
        db, "SELECT duration_ms, stream, stream_outcome FROM requests WHERE id = ?", request_id
    )
    assert stream and outcome == "completed"
    ((profile_ms,),) = read(db, "SELECT duration_ms FROM profiles WHERE id = ?", profile_id)
    session = session_of(db, profile_id)
    # The profile runs from the call to the stream's end: about as long as the request (it starts just
    # after the span, once pyinstrument is up: milliseconds on a loaded machine; a profile that stopped
    # when the call returned would be a small fraction), and it saw the application's work on every
    # chunk (that work is inside the stream loop, so inside the request).
    assert profile_ms >= duration_ms * 0.9
    assert seconds_in(session, "app_prepares_the_prompt") > 0
    assert session.duration * 1000 >= duration_ms * 0.9


# --- in-process: exit paths, thread policy, results unchanged ------------------------------------------


def test_unarmed_nothing_is_profiled_and_the_switch_is_off(profiled: Any, db: Path, client: Any) -> None:
    instrumentor = profiled()
    assert SWITCH.on is False
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    flush(instrumentor)
    assert read(db, "SELECT count(*) FROM profiles") == [(0,)]


def test_the_switch_turns_off_once_the_arm_is_used_up(profiled: Any, db: Path, client: Any) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    assert SWITCH.on is True  # (this process: at once)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    flush(instrumentor)
    deadline = time.monotonic() + 3
    while SWITCH.on and time.monotonic() < deadline:
        time.sleep(0.05)
    assert SWITCH.on is False


STREAM_EXITS = {
    "exhausted": lambda stream: [None for _ in stream],
    "break then close": lambda stream: (next(iter(stream)), stream.close()),
    "with and break": lambda stream: _with_break(stream),
}


def _with_break(stream: Any) -> None:
    with stream:
        for _ in stream:
            break


@pytest.mark.parametrize("exit_path", list(STREAM_EXITS))
def test_every_stream_exit_ends_the_profile(profiled: Any, db: Path, client: Any, exit_path: str) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True,
        extra_headers={"x-fake-scenario": "chunks=5,chunk_delay_ms=10"},
    )  # fmt: skip
    STREAM_EXITS[exit_path](stream)
    flush(instrumentor)
    ((_, _, _, same),) = linked_profiles(db)
    assert same
    assert SWITCH.captures.busy == {}  # the thread is free for the next profile


def test_a_mid_stream_error_is_profiled_and_raised_unchanged(profiled: Any, db: Path, client: Any) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        stream=True,
        extra_headers={"x-fake-scenario": "chunks=10,abort_after=3"},
    )
    with pytest.raises(Exception) as raised:
        for _ in stream:
            pass
    assert isinstance(raised.value, (openai.APIError, httpx.TransportError))
    flush(instrumentor)
    ((_, _, profile_id, same),) = linked_profiles(db)
    assert same
    assert read(db, "SELECT is_error FROM profiles WHERE id = ?", profile_id) == [(1,)]


def test_profiling_does_not_change_the_result_or_the_exception(profiled: Any, db: Path, client: Any) -> None:
    from llmlens import profiling

    unprofiled = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.RateLimitError) as before:
        client.chat.completions.create(model="fake-error-429", messages=HI)
    instrumentor = profiled()
    profiling.arm(2, db=str(db))
    profiled_result = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.RateLimitError) as after:
        client.chat.completions.create(model="fake-error-429", messages=HI)
    flush(instrumentor)
    assert profiled_result.choices[0].message == unprofiled.choices[0].message
    assert type(after.value) is type(before.value) and after.value.status_code == before.value.status_code
    assert len(linked_profiles(db)) == 2


def test_an_application_profiler_already_running_is_left_alone(profiled: Any, db: Path, client: Any) -> None:
    from pyinstrument import Profiler

    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    with Profiler(async_mode="enabled") as own:
        response = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert response.choices and own.last_session is not None
    flush(instrumentor)
    assert read(db, "SELECT count(*) FROM profiles") == [(0,)]  # skipped (and counted), not broken


def test_a_cprofile_running_in_the_thread_keeps_its_hook(profiled: Any, db: Path, client: Any) -> None:
    import cProfile
    import sys as _sys

    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    own = cProfile.Profile()
    own.enable()
    try:
        hook = _sys.getprofile()
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert _sys.getprofile() is hook  # still the application's profiler
    finally:
        own.disable()
    flush(instrumentor)
    assert read(db, "SELECT count(*) FROM profiles") == [(0,)]
    assert any("create" in str(key) for key in own.getstats())  # it saw the call


def test_concurrent_requests_on_one_loop_the_first_is_profiled_the_others_counted(
    profiled: Any, db: Path, async_client: Any
) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(3, db=str(db))

    async def one() -> None:
        stream = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True,
            extra_headers={"x-fake-scenario": "chunks=5,chunk_delay_ms=20"},
        )  # fmt: skip
        async for _ in stream:
            pass

    async def three() -> None:
        await asyncio.gather(one(), one(), one())

    asyncio.run(three())
    flush(instrumentor)
    assert read(db, "SELECT count(*) FROM profiles") == [(1,)]
    SWITCH.watcher.poll_now()  # the counters reach the store
    status = profiling.status(str(db))
    assert status["counters"]["skipped_busy"] == 2
    assert status["live"][0]["skipped_busy"] == 2 and status["live"][0]["remaining"] == 2


def test_a_stream_finished_on_another_thread_keeps_its_profile(profiled: Any, db: Path, client: Any) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(2, db=str(db))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, extra_headers={"x-fake-scenario": "chunks=4"}
    )
    worker = threading.Thread(target=lambda: [None for _ in stream])
    worker.start()
    worker.join(10)
    flush(instrumentor)
    assert len(linked_profiles(db)) == 1
    assert SWITCH.captures.detached == 1
    # This thread's next request reclaims the detached profiler and is profiled itself.
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    flush(instrumentor)
    assert len(linked_profiles(db)) == 2
    assert SWITCH.captures.detached == 0 and SWITCH.captures.busy == {}


def test_arm_filters_and_min_duration(profiled: Any, db: Path, client: Any) -> None:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, model="gpt-4o*", operation="chat", min_duration_ms=60, db=str(db))
    client.embeddings.create(model="text-embedding-3-small", input="x")  # another operation
    client.chat.completions.create(model="o4-mini", messages=HI)  # another model
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # too fast: profiled, not kept
    slow = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"x-fake-scenario": "delay_ms=80"}
    )
    flush(instrumentor)
    ((_, response_id, _, _),) = linked_profiles(db)
    assert response_id == slow.id
    SWITCH.watcher.poll_now()
    assert profiling.status(str(db))["counters"]["armed_too_fast"] == 1


# --- sampling and retention ---------------------------------------------------------------------------


def test_sampling_keeps_only_the_slow_and_the_failed(profiled: Any, db: Path, client: Any) -> None:
    instrumentor = profiled(profile_sample=1.0, profile_keep_ms=60)
    assert SWITCH.on
    fast = [client.chat.completions.create(model="gpt-4o-mini", messages=HI).id for _ in range(3)]
    slow = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"x-fake-scenario": "delay_ms=80"}
    ).id
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=HI)
    flush(instrumentor)
    kept = read(
        db,
        "SELECT r.response_id, r.is_error, p.reason FROM profiles p JOIN requests r ON r.profile_id = p.id",
    )
    assert sorted(kept, key=str) == sorted([(slow, 0, "sampled"), (None, 1, "sampled")], key=str)
    assert not {row[0] for row in kept} & set(fast)


def test_retention_keeps_the_newest_profiles(profiled: Any, db: Path, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("LLMLENS_STORE_MAX_PROFILES", "3")
    instrumentor = profiled(profile_sample=1.0, profile_keep_ms=0)
    ids = [client.chat.completions.create(model="gpt-4o-mini", messages=HI).id for _ in range(6)]
    flush(instrumentor)
    linked = linked_profiles(db)
    assert len(read(db, "SELECT id FROM profiles")) == 3
    assert [response_id for _, response_id, _, _ in linked] == ids[3:]
    # The older rows no longer point to a profile that is gone.
    assert read(db, "SELECT count(*) FROM requests WHERE profile_id IS NOT NULL") == [(3,)]


# --- the proxy -----------------------------------------------------------------------------------------


def test_a_proxied_streaming_requests_profile_covers_its_last_byte(
    profiled: Any, db: Path, fake: FakeProvider
) -> None:
    from llmlens import profiling
    from proxies import openai_proxy
    from proxies.server import UvicornServer

    instrumentor = profiled()
    profiling.arm(1, route="/v1/*", db=str(db))
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        proxied = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
        stream = proxied.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True,
            extra_headers={"x-fake-scenario": "chunks=5,chunk_delay_ms=20"},
        )  # fmt: skip
        chunks = [chunk for chunk in stream]
        assert chunks
        wait_for_profiles(db, 1, instrumentor)
    rows = read(
        db,
        "SELECT r.span_kind, r.duration_ms, p.duration_ms, p.route FROM requests r"
        " JOIN profiles p ON CAST(p.id AS TEXT) = r.profile_id",
    )
    assert len(rows) == 1
    kind, request_ms, profile_ms, route = rows[0]
    # The SERVER row (first byte in to last byte out) is the one profiled, over all of it.
    assert kind == "server" and route == "/v1/chat/completions"
    assert profile_ms >= request_ms * 0.9  # (see the streamed SDK call's test)
    # Only the proxied request: its upstream SDK call is part of it, not a profile of its own.
    assert read(db, "SELECT count(*) FROM profiles") == [(1,)]


# --- the views ------------------------------------------------------------------------------------------


@pytest.fixture
def one_profile(profiled: Any, db: Path, client: Any) -> int:
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"x-fake-scenario": "delay_ms=30"}
    )
    flush(instrumentor)
    ((_, _, profile_id, _),) = linked_profiles(db)
    return int(profile_id)


def test_show_renders_text_html_and_valid_speedscope(one_profile: int, db: Path, tmp_path: Path) -> None:
    text = run_llmlens("profile", "show", str(one_profile), db=db)
    assert text.returncode == 0 and "test_show_renders_text_html_and_valid_speedscope" not in text.stderr
    assert "Samples:" in text.stdout
    out = tmp_path / "p.json"
    speedscope = run_llmlens(
        "profile", "show", str(one_profile), "--format", "speedscope", "-o", str(out), db=db
    )
    assert speedscope.returncode == 0, speedscope.stderr
    validate_speedscope(json.loads(out.read_text()), null_as_absent=True)
    html = run_llmlens("profile", "show", str(one_profile), "--format", "html", db=db)
    assert html.returncode == 0 and html.stdout.lstrip().lower().startswith("<!doctype html")
    assert '"frame_records"' in html.stdout or "sessionData" in html.stdout or "pyinstrument" in html.stdout


def test_list_status_log_and_show_mark_the_profile(one_profile: int, db: Path) -> None:
    listing = run_llmlens("profile", "list", db=db)
    assert listing.returncode == 0 and listing.stdout.splitlines()[2].split()[0] == str(one_profile)
    as_json = json.loads(run_llmlens("profile", "list", "--json", db=db).stdout)
    (entry,) = as_json
    assert entry["id"] == one_profile and entry["summary"]["sample_count"] > 0 and "session" not in entry
    request_id = entry["request_id"]
    log = run_llmlens("log", "--json", db=db)
    (row,) = [r for r in json.loads(log.stdout)["rows"] if r["id"] == request_id]
    assert row["profile_id"] == str(one_profile)
    log_text = run_llmlens("log", db=db).stdout.splitlines()
    assert log_text[0].split()[-1] == "profile" and log_text[2].split()[-1] == str(one_profile)
    show = run_llmlens("show", str(request_id), db=db)
    assert show.returncode == 0, show.stderr
    assert f"armed profile {one_profile}" in show.stdout
    assert f"llmlens profile show {one_profile}" in show.stdout
    detail = json.loads(run_llmlens("show", str(request_id), "--json", db=db).stdout)
    assert detail["profile"]["id"] == one_profile and detail["profile"]["summary"]["top_frames"] is not None


@pytest.mark.parametrize(
    "damage, message",
    [
        ("UPDATE profiles SET session = x'00ff00ff'", "is damaged"),
        ("UPDATE profiles SET session = ?", "is not a session this pyinstrument can read"),
        ("UPDATE profiles SET encoding = 'speedscope+gzip'", "has an unknown encoding"),
    ],
)
def test_a_damaged_or_foreign_profile_is_one_clear_line(
    one_profile: int, db: Path, damage: str, message: str
) -> None:
    conn = sqlite3.connect(db)
    with conn:
        if "?" in damage:
            conn.execute(damage, (zlib.compress(json.dumps({"not": "a session"}).encode()),))
        else:
            conn.execute(damage)
    conn.close()
    for fmt in ("text", "html", "speedscope"):
        shown = run_llmlens("profile", "show", str(one_profile), "--format", fmt, db=db)
        assert shown.returncode == 2
        assert shown.stderr.count("\n") == 1 and message in shown.stderr and "Traceback" not in shown.stderr


def test_cli_errors_are_one_line(db: Path, tmp_path: Path) -> None:
    missing = run_llmlens("profile", "status", db=tmp_path / "none.db")
    assert missing.returncode == 2 and "no llmlens store" in missing.stderr
    for args, text in [
        (("arm", "--next", "0"), "--next"),
        (("arm", "--expires", "soon"), "--expires"),
        (("arm", "--min-duration", "-3"), "--min-duration"),
        (("show", "abc"), "not a profile id"),
    ]:
        result = run_llmlens("profile", *args, db=db)
        assert result.returncode == 2 and text in result.stderr and result.stderr.count("\n") == 1, (
            result.stderr
        )
    assert run_llmlens("profile", "arm", "--next", "2", "--model", "gpt-4o*", db=db).returncode == 0
    status = run_llmlens("profile", "status", db=db).stdout
    assert "arm 1: 0/2 profiled, model gpt-4o*" in status
    assert run_llmlens("profile", "disarm", db=db).stdout.strip() == "disarmed 1 arm"
    assert "nothing armed" in run_llmlens("profile", "status", db=db).stdout
    assert run_llmlens("profile", "show", "7", db=db).stderr.startswith("llmlens: no profile 7")


def _handler_work() -> None:
    total = 0
    for number in range(200_000):
        total += number % 3


def test_a_request_recorded_with_llm_request_is_profiled_whole(profiled: Any, db: Path, client: Any) -> None:
    import llmlens
    from llmlens import profiling

    instrumentor = profiled()
    profiling.arm(1, db=str(db))
    body = {"model": "gpt-4o-mini", "messages": HI}
    with llmlens.llm_request(source_format="openai", body=json.dumps(body)) as request:
        _handler_work()  # the server's own work before and after its upstream call is in the profile
        completion = client.chat.completions.create(**body)
        _handler_work()
        request.set_response(completion.model_dump_json().encode())
    flush(instrumentor)
    ((request_id, _, profile_id, same),) = linked_profiles(db)
    assert same
    assert read(db, "SELECT span_kind FROM requests WHERE id = ?", request_id) == [("server",)]
    assert seconds_in(session_of(db, profile_id), "_handler_work") > 0
    assert read(db, "SELECT count(*) FROM profiles") == [(1,)]


def test_a_pruned_request_takes_its_profile_with_it(profiled: Any, db: Path, client: Any) -> None:
    from llmlens.store.retention import Retention, prune
    from llmlens.store.schema import open_store

    instrumentor = profiled(profile_sample=1.0, profile_keep_ms=0)
    ids = [client.chat.completions.create(model="gpt-4o-mini", messages=HI).id for _ in range(3)]
    flush(instrumentor)
    conn = open_store(db)
    try:
        prune(conn, Retention(max_success=1, max_errors=0, max_age_days=0, max_profiles=200))
    finally:
        conn.close()
    assert [response_id for _, response_id, _, _ in linked_profiles(db)] == ids[2:]
    assert read(db, "SELECT count(*) FROM profiles") == [(1,)]


def test_arm_in_this_process_is_seen_when_it_returns(profiled: Any, db: Path) -> None:
    from llmlens import profiling

    profiled()
    SWITCH.watcher.poll_s = 0  # the watcher reads all the time: arm() must wait for a read after it
    for _ in range(100):
        arm_id = profiling.arm(1, db=str(db))
        assert arm_id in {arm.id for arm in SWITCH.arms}
        profiling.disarm(str(db))
        assert arm_id not in {arm.id for arm in SWITCH.arms}
