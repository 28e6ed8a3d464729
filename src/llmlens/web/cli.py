"""`llmlens ui`: serve the dashboard over a store with uvicorn (and `serve()` for `llmlens demo --ui`).

Loopback only unless a token is given: binding any other address without `--token` (or
`$LLMLENS_UI_TOKEN`) is one line on stderr and exit status 2, as is a port that cannot be bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import threading
import time
from typing import Any, TextIO
from urllib.parse import quote

COMMAND = "ui"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; accepted: a port number from 0 to 65535")
    return int(text)


def register(commands: Any) -> None:
    """Add `ui` to the `llmlens` parser."""
    from llmlens.store import cli as store_cli

    ui = commands.add_parser(
        COMMAND, parents=[store_cli._common()], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="the local web dashboard over the store (overview, requests, live, profiles, storage)",
        description=(
            "Serve a web dashboard over the store: an overview with charts and provider health, the\n"
            "request log with filters (new rows appear live), each request with its trace waterfall,\n"
            "phases, captured content and profile, the requests in flight, profiles (arm, disarm, view)\n"
            "and the store's storage (prune). Also a JSON API under /api/. Nothing is fetched from the\n"
            "network. Only a loopback address unless --token (or LLMLENS_UI_TOKEN) is given; see\n"
            "docs/ui.md.\n\n"
            "examples:\n  llmlens ui --open\n  llmlens ui --db app.db --port 9000\n"
            "  LLMLENS_UI_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())') "
            "llmlens ui --host 0.0.0.0"
        ),
    )  # fmt: skip
    ui.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    ui.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    ui.add_argument("--open", dest="open_browser", action="store_true", help="open it in the web browser")
    ui.add_argument("--token", help="require this token of every request (default: $LLMLENS_UI_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from llmlens.store import cli as store_cli

    return serve(store_cli._path(args), host=args.host, port=args.port, token=args.token,
                 open_browser=args.open_browser)  # fmt: skip


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; any other name counts as reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _fail(message: str) -> int:
    print(f"llmlens: {message}", file=sys.stderr)
    return 2


def serve(
    db_path: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    open_browser: bool = False,
    out: TextIO | None = None,
) -> int:
    """Serve the dashboard over `db_path` until Ctrl-C; the exit status."""
    from llmlens.settings import Settings, SettingsError

    out = out or sys.stdout
    try:
        token = Settings.from_env(only=("ui_token",), ui_token=token).ui_token
    except SettingsError as error:
        return _fail(str(error))
    loopback = is_loopback(host)
    if not loopback and not token:
        return _fail(f"--host {host} is not a loopback address: anyone who reaches it could read the store; "
                     "give --token TOKEN (or set LLMLENS_UI_TOKEN)")  # fmt: skip
    try:
        import uvicorn

        from llmlens.web.app import create_app
        from llmlens.web.server import DashboardServer
    except ImportError as error:
        return _fail(f"llmlens ui needs starlette and uvicorn ({error}): pip install 'llmlens[ui]'")
    problem = _store_problem(db_path)
    if problem:
        return _fail(problem)
    try:
        sock = _listen(host, port)
    except OSError as error:
        return _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    port = sock.getsockname()[1]
    allowed = (*LOOPBACK_NAMES, host) if loopback and not token else None
    app = create_app(db_path, token=token, allowed_hosts=allowed)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    shown = url + (f"?token={quote(token)}" if token else "")
    if not os.path.exists(db_path):
        print(f"no store at {db_path} yet: the pages fill in once an app records there", file=out)
    print(f"llmlens ui: {db_path}\n  {shown}\n(Ctrl-C to stop)", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)  # fmt: skip
    server = DashboardServer(config, app.state.stopping)
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, shown), daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def _store_problem(path: str) -> str | None:
    """Why the file at `path` cannot be served (a directory, not a store); None if it can, or is absent."""
    from llmlens.store.schema import StoreError
    from llmlens.web.reader import open_reader

    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        return f"{path} is a directory, not an llmlens store"
    try:
        open_reader(path).close()
    except StoreError as error:
        return str(error)
    return None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted sockets only then (else Nagle holds the
    # second write of every response on a kept-alive connection until the delayed ACK, about 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _open_when_started(server: Any, url: str) -> None:
    import webbrowser

    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)
