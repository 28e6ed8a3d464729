"""The SQLite schema of the local store, its numbered migrations, and how a connection is opened.

`PRAGMA user_version` is the schema version. Each migration takes the database from version N-1 to N
in one transaction; `open_store()` applies the missing ones, so a file written by any earlier llmlens
opens in a newer one. A file that is not an llmlens store (another application's SQLite file, or not
SQLite at all) is refused with `StoreError`, never modified.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

APPLICATION_ID = 0x4C4C4D4C  # "LLML": marks the file as ours (PRAGMA application_id)


class StoreError(RuntimeError):
    """The store file cannot be used; the message is one line, fit for a user."""


# Rollup histograms: log-spaced bucket upper bounds in milliseconds (ratio 1.25, 1 ms .. ~10 min), so
# percentiles from rollups are within one bucket (25%) of the exact value; the request log gives exact
# values for small windows.
HIST_RATIO = 1.25
HIST_BUCKETS = 61

MIGRATIONS: tuple[str, ...] = (
    # 1: request log, child spans, per-minute rollups, metadata
    """
    CREATE TABLE requests (
        id                  INTEGER PRIMARY KEY,
        trace_id            TEXT NOT NULL,
        span_id             TEXT NOT NULL,
        parent_span_id      TEXT,
        start_ns            INTEGER NOT NULL,
        end_ns              INTEGER NOT NULL,
        duration_ms         REAL NOT NULL,
        span_name           TEXT NOT NULL,
        span_kind           TEXT NOT NULL,
        operation           TEXT,
        provider            TEXT,
        request_model       TEXT,
        response_model      TEXT,
        api                 TEXT,
        server_address      TEXT,
        server_port         INTEGER,
        stream              INTEGER NOT NULL DEFAULT 0,
        status              TEXT NOT NULL,
        is_error            INTEGER NOT NULL DEFAULT 0,
        error_type          TEXT,
        error_message       TEXT,
        http_status         INTEGER,
        input_tokens        INTEGER,
        output_tokens       INTEGER,
        cache_read_tokens   INTEGER,
        cache_write_tokens  INTEGER,
        reasoning_tokens    INTEGER,
        cost_usd            REAL,
        ttfc_ms             REAL,
        chunk_count         INTEGER,
        stream_outcome      TEXT,
        finish_reasons      TEXT,
        response_id         TEXT,
        api_key_label       TEXT,
        client_ip           TEXT,
        source_format       TEXT,
        target_format       TEXT,
        service_name        TEXT,
        profile_id          TEXT,
        attributes          TEXT NOT NULL DEFAULT '{}',
        UNIQUE (trace_id, span_id)
    );
    CREATE INDEX requests_by_time ON requests (start_ns);
    CREATE INDEX requests_by_class ON requests (is_error, id);
    CREATE INDEX requests_by_model ON requests (request_model, id);
    CREATE INDEX requests_by_provider ON requests (provider, id);

    CREATE TABLE spans (
        trace_id        TEXT NOT NULL,
        span_id         TEXT NOT NULL,
        parent_span_id  TEXT,
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL,
        start_ns        INTEGER NOT NULL,
        end_ns          INTEGER NOT NULL,
        status          TEXT NOT NULL,
        attributes      TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID;

    CREATE TABLE rollup_minute (
        minute              INTEGER NOT NULL,
        provider            TEXT NOT NULL,
        model               TEXT NOT NULL,
        operation           TEXT NOT NULL,
        stream              INTEGER NOT NULL,
        is_error            INTEGER NOT NULL,
        requests            INTEGER NOT NULL DEFAULT 0,
        duration_ms_sum     REAL NOT NULL DEFAULT 0,
        duration_ms_max     REAL NOT NULL DEFAULT 0,
        ttfc_ms_sum         REAL NOT NULL DEFAULT 0,
        ttfc_count          INTEGER NOT NULL DEFAULT 0,
        input_tokens        INTEGER NOT NULL DEFAULT 0,
        output_tokens       INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
        cost_usd            REAL NOT NULL DEFAULT 0,
        duration_hist       TEXT NOT NULL DEFAULT '{}',
        ttfc_hist           TEXT NOT NULL DEFAULT '{}',
        last_ns             INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (minute, provider, model, operation, stream, is_error)
    ) WITHOUT ROWID;

    -- The child spans of a trace go with its last request row.
    CREATE TRIGGER requests_cleanup_spans AFTER DELETE ON requests
    WHEN NOT EXISTS (SELECT 1 FROM requests WHERE trace_id = old.trace_id)
    BEGIN
        DELETE FROM spans WHERE trace_id = old.trace_id;
    END;

    CREATE TABLE meta (
        key     TEXT PRIMARY KEY,
        value   TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: an index per request-log filter (request_log._driver: every filtered page walks an index
    # in id order), and hourly and daily rollups: at a million requests over 30 days the minute
    # rollups hold ~440,000 rows, too many to sum (and merge histograms of) per stats call; the hour
    # rows of the same span are ~16,000, the day rows ~750. Filled from the minute rows (days from
    # the hours), histograms merged bucket by bucket. Days are UTC days (epoch nanoseconds // 86400e9).
    """
    CREATE INDEX requests_by_response_model ON requests (response_model, id);
    CREATE INDEX requests_by_status ON requests (status, id);
    CREATE INDEX requests_by_key_label ON requests (api_key_label, id);
    CREATE INDEX requests_by_operation ON requests (operation, id);

    CREATE TABLE rollup_hour (
        hour                INTEGER NOT NULL,
        provider            TEXT NOT NULL,
        model               TEXT NOT NULL,
        operation           TEXT NOT NULL,
        stream              INTEGER NOT NULL,
        is_error            INTEGER NOT NULL,
        requests            INTEGER NOT NULL DEFAULT 0,
        duration_ms_sum     REAL NOT NULL DEFAULT 0,
        duration_ms_max     REAL NOT NULL DEFAULT 0,
        ttfc_ms_sum         REAL NOT NULL DEFAULT 0,
        ttfc_count          INTEGER NOT NULL DEFAULT 0,
        input_tokens        INTEGER NOT NULL DEFAULT 0,
        output_tokens       INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
        cost_usd            REAL NOT NULL DEFAULT 0,
        duration_hist       TEXT NOT NULL DEFAULT '{}',
        ttfc_hist           TEXT NOT NULL DEFAULT '{}',
        last_ns             INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (hour, provider, model, operation, stream, is_error)
    ) WITHOUT ROWID;

    CREATE TABLE rollup_day (
        day                 INTEGER NOT NULL,
        provider            TEXT NOT NULL,
        model               TEXT NOT NULL,
        operation           TEXT NOT NULL,
        stream              INTEGER NOT NULL,
        is_error            INTEGER NOT NULL,
        requests            INTEGER NOT NULL DEFAULT 0,
        duration_ms_sum     REAL NOT NULL DEFAULT 0,
        duration_ms_max     REAL NOT NULL DEFAULT 0,
        ttfc_ms_sum         REAL NOT NULL DEFAULT 0,
        ttfc_count          INTEGER NOT NULL DEFAULT 0,
        input_tokens        INTEGER NOT NULL DEFAULT 0,
        output_tokens       INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
        cost_usd            REAL NOT NULL DEFAULT 0,
        duration_hist       TEXT NOT NULL DEFAULT '{}',
        ttfc_hist           TEXT NOT NULL DEFAULT '{}',
        last_ns             INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, provider, model, operation, stream, is_error)
    ) WITHOUT ROWID;

    INSERT INTO rollup_hour (hour, provider, model, operation, stream, is_error, requests, duration_ms_sum,
        duration_ms_max, ttfc_ms_sum, ttfc_count, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, cost_usd, last_ns)
    SELECT minute / 60, provider, model, operation, stream, is_error, sum(requests), sum(duration_ms_sum),
        max(duration_ms_max), sum(ttfc_ms_sum), sum(ttfc_count), sum(input_tokens), sum(output_tokens),
        sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), max(last_ns)
    FROM rollup_minute
    GROUP BY minute / 60, provider, model, operation, stream, is_error;

    UPDATE rollup_hour SET
        duration_hist = (
        SELECT coalesce(json_group_object(b, n), '{}') FROM (
            SELECT j.key AS b, sum(j.value) AS n FROM rollup_minute AS m, json_each(m.duration_hist) AS j
            WHERE m.minute >= rollup_hour.hour * 60 AND m.minute < (rollup_hour.hour + 1) * 60
              AND m.provider = rollup_hour.provider AND m.model = rollup_hour.model
              AND m.operation = rollup_hour.operation AND m.stream = rollup_hour.stream
              AND m.is_error = rollup_hour.is_error
            GROUP BY j.key)),
        ttfc_hist = (
        SELECT coalesce(json_group_object(b, n), '{}') FROM (
            SELECT j.key AS b, sum(j.value) AS n FROM rollup_minute AS m, json_each(m.ttfc_hist) AS j
            WHERE m.minute >= rollup_hour.hour * 60 AND m.minute < (rollup_hour.hour + 1) * 60
              AND m.provider = rollup_hour.provider AND m.model = rollup_hour.model
              AND m.operation = rollup_hour.operation AND m.stream = rollup_hour.stream
              AND m.is_error = rollup_hour.is_error
            GROUP BY j.key));

    INSERT INTO rollup_day (day, provider, model, operation, stream, is_error, requests, duration_ms_sum,
        duration_ms_max, ttfc_ms_sum, ttfc_count, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, cost_usd, last_ns)
    SELECT hour / 24, provider, model, operation, stream, is_error, sum(requests), sum(duration_ms_sum),
        max(duration_ms_max), sum(ttfc_ms_sum), sum(ttfc_count), sum(input_tokens), sum(output_tokens),
        sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), max(last_ns)
    FROM rollup_hour
    GROUP BY hour / 24, provider, model, operation, stream, is_error;

    UPDATE rollup_day SET
        duration_hist = (
        SELECT coalesce(json_group_object(b, n), '{}') FROM (
            SELECT j.key AS b, sum(j.value) AS n FROM rollup_hour AS m, json_each(m.duration_hist) AS j
            WHERE m.hour >= rollup_day.day * 24 AND m.hour < (rollup_day.day + 1) * 24
              AND m.provider = rollup_day.provider AND m.model = rollup_day.model
              AND m.operation = rollup_day.operation AND m.stream = rollup_day.stream
              AND m.is_error = rollup_day.is_error
            GROUP BY j.key)),
        ttfc_hist = (
        SELECT coalesce(json_group_object(b, n), '{}') FROM (
            SELECT j.key AS b, sum(j.value) AS n FROM rollup_hour AS m, json_each(m.ttfc_hist) AS j
            WHERE m.hour >= rollup_day.day * 24 AND m.hour < (rollup_day.day + 1) * 24
              AND m.provider = rollup_day.provider AND m.model = rollup_day.model
              AND m.operation = rollup_day.operation AND m.stream = rollup_day.stream
              AND m.is_error = rollup_day.is_error
            GROUP BY j.key));
    """,
    # 3: profiling (llmlens.profiling). `profile_arms`: what `llmlens profile arm` asked for; running
    # processes read the live arms every half second and claim a slot per profile they keep, in the
    # transaction that stores it, so N profiles are kept in all however many processes profile.
    # `profiles`: one pyinstrument session per profiled request (zlib-compressed JSON, re-rendered on
    # demand), with a summary; linked to its request row by trace and span id (and requests.profile_id).
    """
    CREATE TABLE profile_arms (
        id                  INTEGER PRIMARY KEY,
        created_ns          INTEGER NOT NULL,
        expires_ns          INTEGER NOT NULL,
        requested           INTEGER NOT NULL,
        remaining           INTEGER NOT NULL,
        provider            TEXT,
        model               TEXT,
        operation           TEXT,
        route               TEXT,
        min_duration_ms     REAL,
        disarmed_ns         INTEGER,
        skipped_busy        INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE profiles (
        id                  INTEGER PRIMARY KEY,
        trace_id            TEXT NOT NULL,
        span_id             TEXT NOT NULL,
        arm_id              INTEGER,
        reason              TEXT NOT NULL,
        start_ns            INTEGER NOT NULL,
        duration_ms         REAL NOT NULL,
        provider            TEXT,
        model               TEXT,
        operation           TEXT,
        route               TEXT,
        is_error            INTEGER NOT NULL DEFAULT 0,
        pid                 INTEGER,
        sample_count        INTEGER NOT NULL DEFAULT 0,
        summary             TEXT NOT NULL DEFAULT '{}',
        encoding            TEXT NOT NULL,
        session             BLOB NOT NULL,
        UNIQUE (trace_id, span_id)
    );

    -- A request row that goes (retention) takes its profile with it.
    CREATE TRIGGER requests_cleanup_profiles AFTER DELETE ON requests
    WHEN old.profile_id IS NOT NULL
    BEGIN
        DELETE FROM profiles WHERE trace_id = old.trace_id AND span_id = old.span_id;
    END;

    -- A request row whose profile went (the profile cap) no longer points to it.
    CREATE TRIGGER profiles_unlink AFTER DELETE ON profiles
    BEGIN
        UPDATE requests SET profile_id = NULL
        WHERE trace_id = old.trace_id AND span_id = old.span_id AND profile_id = CAST(old.id AS TEXT);
    END;
    """,
    # 4: requests in flight (store/active.py writes them, store/active_reads.py reads them). Each writing
    # process has a `store_processes` row whose heartbeat it refreshes (store/processes.py); its
    # `active_requests` rows are its requests that have started and not ended, with a stream's progress
    # (chunks so far, time to first chunk). A request's row goes in the transaction that writes its
    # `requests` row; a dead process's row is deleted by any writer that notices, and with it its requests.
    """
    CREATE TABLE store_processes (
        id                  INTEGER PRIMARY KEY,
        pid                 INTEGER NOT NULL,
        hostname            TEXT NOT NULL,
        started_ns          INTEGER NOT NULL,
        heartbeat_ns        INTEGER NOT NULL
    );

    CREATE TABLE active_requests (
        trace_id            TEXT NOT NULL,
        span_id             TEXT NOT NULL,
        process_id          INTEGER NOT NULL,
        pid                 INTEGER NOT NULL,
        start_ns            INTEGER NOT NULL,
        span_name           TEXT NOT NULL,
        span_kind           TEXT NOT NULL,
        operation           TEXT,
        provider            TEXT,
        request_model       TEXT,
        server_address      TEXT,
        stream              INTEGER NOT NULL DEFAULT 0,
        route               TEXT,
        chunks              INTEGER,
        ttfc_ms             REAL,
        updated_ns          INTEGER NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID;
    CREATE INDEX active_requests_by_process ON active_requests (process_id);

    CREATE TRIGGER store_processes_cleanup AFTER DELETE ON store_processes
    BEGIN
        DELETE FROM active_requests WHERE process_id = old.id;
    END;
    """,
    # 5: how many of a rollup row's requests had a cost (`priced`) and how many a cost nobody knows
    # (`unpriced`: no price data, as on Python 3.10, no price for the model, no usage; a request that
    # failed before any output is neither: not billed, see rollups.not_billed), so a sum over requests
    # none of which was priced reads "not priced", never $0. Rows written before this are guessed, since
    # the request rows that would tell may be gone: all priced when the row has a cost or is `ollama`'s
    # (free), else all unpriced unless they are failures without tokens.
    """
    ALTER TABLE rollup_minute ADD COLUMN priced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_minute ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_hour ADD COLUMN priced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_hour ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_day ADD COLUMN priced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollup_day ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    UPDATE rollup_minute SET priced = requests WHERE cost_usd <> 0 OR provider = 'ollama';
    UPDATE rollup_hour SET priced = requests WHERE cost_usd <> 0 OR provider = 'ollama';
    UPDATE rollup_day SET priced = requests WHERE cost_usd <> 0 OR provider = 'ollama';
    UPDATE rollup_minute SET unpriced = requests
        WHERE priced = 0 AND NOT (is_error AND input_tokens = 0 AND output_tokens = 0);
    UPDATE rollup_hour SET unpriced = requests
        WHERE priced = 0 AND NOT (is_error AND input_tokens = 0 AND output_tokens = 0);
    UPDATE rollup_day SET unpriced = requests
        WHERE priced = 0 AND NOT (is_error AND input_tokens = 0 AND output_tokens = 0);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def _check_ours(conn: sqlite3.Connection, path: str) -> None:
    try:
        # One statement, so one snapshot: a process that is creating the store concurrently commits its
        # tables and the application id together, and this sees both or neither.
        app_id, version, tables = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id),"
            " (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
    except sqlite3.OperationalError as error:
        raise StoreError(f"cannot read {path}: {error}") from None
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is not an llmlens store ({error})") from None
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables > 0):
        raise StoreError(f"{path} is an SQLite file of another application, not an llmlens store")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer llmlens (schema {version}, this one knows {SCHEMA_VERSION}); "
            "upgrade llmlens"
        )


def _statements(script: str) -> list[str]:
    """The statements of a migration script (a `;` inside a trigger body does not end one)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip().rstrip(";").strip():
                statements.append(current.strip())
            current = ""
    return statements


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the migrations the file lacks, up to `target` (default: all). Returns the version reached.

    Each migration runs in one write transaction with its version bump; the version is read again
    once the write lock is held, so processes that open a new file at the same moment migrate it once.
    """
    if target is None:
        target = SCHEMA_VERSION
    version = _user_version(conn)
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _user_version(conn)
            if version < target:
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    # Switching a new file to WAL can fail with "database is locked" at once (no busy handler) while
    # another process is switching it too; retry until the busy timeout.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def open_store(
    path: str | os.PathLike[str], readonly: bool = False, create: bool = True
) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store at `path`. Raises StoreError with a clear line."""
    path = str(path)
    if readonly or not create:  # a reader: the file must be a store already (SQLite makes one of nothing)
        if not os.path.exists(path):
            raise StoreError(
                f"no llmlens store at {path} (run your app with llmlens, or `llmlens demo`, first)"
            )
        if os.path.isdir(path):
            raise StoreError(f"{path} is a directory, not an llmlens store")
        if os.path.getsize(path) == 0:
            raise StoreError(f"{path} is an empty file, not an llmlens store")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open {path}: {error}") from None
    try:
        _check_ours(conn, path)
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            _set_wal(conn, 10.0)
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        elif conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            raise StoreError(
                f"{path} has an older schema; open it once for writing (any llmlens command) to migrate"
            )
    except sqlite3.OperationalError as error:  # read-only or full disk, locked, cannot create the WAL
        conn.close()
        raise StoreError(f"cannot write {path}: {error}") from None
    except sqlite3.DatabaseError as error:
        conn.close()
        raise StoreError(f"{path} is not an llmlens store ({error})") from None
    except StoreError:
        conn.close()
        raise
    return conn
