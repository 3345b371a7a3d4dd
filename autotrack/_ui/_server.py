"""The ``autotrack ui`` web app: the standard library's ThreadingHTTPServer and a static JS page.

Security model (the UI shows data that may be private, on a machine that may browse the web):

- it binds 127.0.0.1 unless told otherwise; another address needs ``allow_remote=True``, prints a
  warning and always requires a bearer token (one is generated when none is given);
- with a token (``autotrack ui --token``, ``AUTOTRACK_UI_TOKEN``) every request must carry it: the
  ``Authorization: Bearer`` header, or the cookie set by opening the printed ``/?token=...`` URL
  once (``HttpOnly``, ``SameSite=Strict``); compared with ``hmac.compare_digest``;
- connections time out (``REQUEST_TIMEOUT_S`` of silence), at most ``MAX_CONNECTIONS`` are served
  at once (more get 503), the listen queue holds ``REQUEST_QUEUE`` connections, and request
  lines, headers and bodies are bounded;
- it serves only data from the store and its own static files, by fixed names; no endpoint takes
  a filesystem path; artifacts are fetched by their numeric id and read from the store's
  content-addressed folder (artifacts recorded as references to outside files are not served);
- a request whose ``Host`` header is not the bound address gets 403 (DNS rebinding);
- state-changing requests (POST) must carry ``Content-Type: application/json`` and an ``Origin``
  equal to the server's own origin, else 403/415 (CSRF from other sites);
- responses carry a Content-Security-Policy allowing only this origin's scripts.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import mimetypes
import os
import re
import shutil
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..store import Backend as Store
from . import _data

STATIC = Path(__file__).parent / "static"
_STATIC_FILES = {"app.js", "plots.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}
_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_BODY = 1 << 20
#: A connection silent this long (seconds) is closed: stalled clients cannot hold the server.
REQUEST_TIMEOUT_S = 15.0
#: Connections served at once; more wait up to ``BUSY_WAIT_S`` for a slot, then get 503.
MAX_CONNECTIONS = 64
BUSY_WAIT_S = 2.0
#: Connections the kernel queues before ``accept`` (the standard library's default is 5).
REQUEST_QUEUE = 256
MAX_URL = 8192
_TOKEN_COOKIE = "autotrack_ui_token"


def new_token() -> str:
    """A random token for the UI (URL-safe, 256 bits)."""
    import secrets

    return secrets.token_urlsafe(32)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = REQUEST_QUEUE

    def __init__(self, host: str, port: int, store: Store, allowed_hosts: set[str] | None = None,
                 token: str | None = None) -> None:
        self.store = store
        self.token = token or None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((host, port), Handler)
        self.host = host
        self.port = self.server_address[1]
        names = {host.lower()}
        if _is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
        if host in ("0.0.0.0", "::", ""):
            names |= {socket.gethostname().lower(), socket.getfqdn().lower(), "localhost", "127.0.0.1"}
        names |= {h.lower() for h in (allowed_hosts or ())}
        self.allowed_hosts = {f"{n}:{self.port}" for n in names}
        if self.port == 80:
            self.allowed_hosts |= names
        shown = "localhost" if _is_loopback(host) else host
        self.url = f"http://{shown}:{self.port}/"
        self.origins = {f"http://{h}" for h in self.allowed_hosts}
        self.cookie_name = f"{_TOKEN_COOKIE}_{self.port}"

    @property
    def login_url(self) -> str:
        """The URL to open: with ``?token=`` when the server has a token."""
        from urllib.parse import quote

        return f"{self.url}?token={quote(self.token)}" if self.token else self.url

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most ``MAX_CONNECTIONS`` at once."""
        if not self._slots.acquire(timeout=BUSY_WAIT_S):
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Handler(BaseHTTPRequestHandler):
    server: UIServer
    protocol_version = "HTTP/1.1"
    server_version = "autotrack-ui"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # socket timeout of every read and write on the connection

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # -- plumbing ------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(_clean(data), default=repr, allow_nan=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _check_host(self) -> bool:
        host = (self.headers.get("Host") or "").lower()
        if host not in self.server.allowed_hosts:
            self._json({"error": f"Host {host!r} is not this server; open {self.server.url}"}, 403)
            return False
        return True

    def _check_token(self, url: Any) -> bool:
        """With a token set: True when the request carries it (header or cookie). Opening
        ``/?token=...`` sets the cookie and redirects to ``/`` so the token leaves the URL bar."""
        token = self.server.token
        if token is None:
            return True
        wanted = token.encode()
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), wanted):
            return True
        from http.cookies import CookieError, SimpleCookie

        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            cookie = SimpleCookie()
        morsel = cookie.get(self.server.cookie_name)
        if morsel is not None and hmac.compare_digest(morsel.value.encode(), wanted):
            return True
        given = parse_qs(url.query).get("token", [""])[-1]
        if url.path in ("/", "/index.html") and given and hmac.compare_digest(given.encode(), wanted):
            self._send(303, b"", "text/plain; charset=utf-8", {
                "Location": "/", "Cache-Control": "no-store",
                "Set-Cookie": f"{self.server.cookie_name}={token}; Path=/; HttpOnly; SameSite=Strict"})
            return False
        self._json({"error": "this UI needs its token: open the URL that `autotrack ui` printed "
                             "(/?token=...) or send 'Authorization: Bearer <token>'"}, 401)
        return False

    def _dispatch(self, method: str) -> None:
        try:
            if not self._check_host():
                return
            if len(self.path) > MAX_URL:
                raise ApiError(414, f"URLs are at most {MAX_URL} characters")
            url = urlsplit(self.path)
            if not self._check_token(url):
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if method == "GET":
                self._get(url.path, query)
            else:
                self._post(url.path)
        except ApiError as exc:
            self._json({"error": str(exc)}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            from .._errors import InvalidArgumentError, ModelNotFoundError, RunNotFoundError

            if isinstance(exc, (RunNotFoundError, ModelNotFoundError)):
                self._json({"error": str(exc)}, 404)
            elif isinstance(exc, InvalidArgumentError):
                self._json({"error": str(exc)}, 400)
            else:
                self._json({"error": f"{type(exc).__name__}: {exc}"}, 500)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        if self._check_host():
            self._json({"error": "method not allowed"}, 405)

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    # -- routes --------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, str]) -> None:
        if path in ("/", "/index.html"):
            self._send(200, (STATIC / "index.html").read_bytes(), "text/html; charset=utf-8", {"Cache-Control": "no-store"})
            return
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name in _STATIC_FILES:
                file = STATIC / name
            else:
                raise ApiError(404, "no such file")
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._send(200, file.read_bytes(), f"{ctype}; charset=utf-8", {"Cache-Control": "max-age=300"})
            return
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["api"]:
            raise ApiError(404, "not found")
        parts = parts[1:]
        if parts == ["runs"]:
            self._json(self._list_runs(query))
        elif len(parts) == 2 and parts[0] == "runs":
            self._json(_data.run_detail(self._record(parts[1])))
        elif len(parts) == 3 and parts[0] == "runs" and parts[2] == "metrics":
            record = self._record(parts[1])
            keys = [k for k in query.get("keys", "").split(",") if k] or None
            self._json(_data.metric_series(record, keys, self._points(query)))
        elif len(parts) == 5 and parts[0] == "runs" and parts[2] == "artifacts" and parts[3].isdigit() and parts[4] == "preview":
            self._json(_data.artifact_preview(self._record(parts[1]), int(parts[3])))
        elif len(parts) == 5 and parts[0] == "runs" and parts[2] == "artifacts" and parts[3].isdigit() and parts[4] == "file":
            name, body = _data.reference_bytes(self._record(parts[1]), int(parts[3]))
            filename = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1]) or "artifact"
            self._send(200, body, "application/octet-stream",
                       {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
        elif parts == ["compare"]:
            from .._report import points_for

            if "parent" in query:  # a study's or a search's trials: its children, in start order
                records = self._record(query["parent"]).children[:_data.MAX_COMPARED_CHILDREN]
                if not records:
                    raise ApiError(404, "this run has no child runs to compare")
            else:
                ids = [i for i in query.get("ids", "").split(",") if i]
                if not 1 <= len(ids) <= 100:
                    raise ApiError(400, "pass ids=ID1,ID2,... (1 to 100 runs), or parent=ID for a run's children")
                records = [self._record(i) for i in ids]
            keys = [k for k in query.get("keys", "").split(",") if k] if "keys" in query else None
            out = _data.compare(records, keys, self._points(query, default=points_for(len(records))))
            if len(records) == 2 and query.get("diff", "1") == "1":
                from .._diff import diff_runs

                try:
                    out["diff"] = diff_runs(records[0], records[1])
                except Exception as exc:  # noqa: BLE001 - the diff panel shows its own error
                    out["diff_error"] = f"{type(exc).__name__}: {exc}"
            self._json(out)
        elif len(parts) == 2 and parts[0] == "artifacts":
            self._artifact(parts[1])
        elif parts == ["models"]:
            self._json(_data.models_list(self.server.store))
        elif len(parts) == 2 and parts[0] == "models":
            self._json(_data.model_detail(self.server.store, unquote(parts[1])))
        else:
            raise ApiError(404, "not found")

    def _post(self, path: str) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        origin = self.headers.get("Origin")
        if origin is None or origin.lower() not in self.server.origins:
            raise ApiError(403, "cross-origin request refused")
        if ctype != "application/json":
            raise ApiError(415, "send JSON (Content-Type: application/json)")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "bad Content-Length") from None
        if length < 0:
            raise ApiError(400, "bad Content-Length")
        if length > MAX_BODY:
            raise ApiError(413, "request too large")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            raise ApiError(400, "invalid JSON") from None
        parts = [p for p in path.split("/") if p]
        if len(parts) == 4 and parts[:2] == ["api", "runs"] and parts[3] in ("tags", "note", "name"):
            self._json(_data.edit_run(self._record(parts[2]), parts[3], body))
        elif parts == ["api", "runs", "bulk"]:
            self._json(_data.bulk(self.server.store, body))
        else:
            raise ApiError(404, "not found")

    # -- helpers -------------------------------------------------------------------------------

    def _points(self, query: dict[str, str], default: int = 2000) -> int:
        try:
            points = int(query.get("points", default))
        except ValueError:
            raise ApiError(400, "points must be an integer") from None
        return min(max(points, 10), 100_000)

    def _record(self, run_id: str) -> Any:
        from .._query import get_run

        if not _RUN_ID.match(run_id):
            raise ApiError(400, "bad run id")
        return get_run(run_id, store=self.server.store)

    def _list_runs(self, query: dict[str, str]) -> dict[str, Any]:
        from .._errors import InvalidArgumentError

        try:
            limit, offset = int(query.get("limit", _data.PAGE)), int(query.get("offset", 0))
        except ValueError:
            raise ApiError(400, "limit and offset are integers") from None
        parent = query.get("parent") or None
        if parent is not None and not _RUN_ID.match(parent):
            raise ApiError(400, "bad run id")
        try:
            return _data.list_runs(self.server.store, where=query.get("where"), order=query.get("order") or None,
                                   desc=query.get("desc", "1") == "1", limit=limit, offset=offset,
                                   nest=query.get("nest", "1") == "1", parent=parent)
        except InvalidArgumentError as exc:
            # a typo in the search box is an answer, not a failure: the page shows it under the box
            # (a 400 would also put an error in the browser console while the user is typing)
            return {"query_error": str(exc)}

    def _artifact(self, raw_id: str) -> None:
        if not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 18:  # any bad id: 404
            raise ApiError(404, "no such artifact (artifacts are fetched by their numeric id)")
        row = self.server.store.artifact(int(raw_id))
        if row is None:
            raise ApiError(404, "no such artifact")
        name, sha, stored = row.name, row.sha256, row.stored
        if not stored or not sha or not _SHA.match(sha):
            raise ApiError(404, "this artifact is a reference to a file outside the store; it is not served")
        try:
            handle = self.server.store.blobs.open(sha)  # never follows a planted symlink (O_NOFOLLOW)
        except OSError:
            raise ApiError(404, "the artifact's contents are missing from the store") from None
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1]) or "artifact"
        with handle:
            size = os.fstat(handle.fileno()).st_size if hasattr(handle, "fileno") else (row.size or 0)
            self._send(200, b"", "application/octet-stream",
                       {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
                       length=size)
            if self.command != "HEAD":
                shutil.copyfileobj(handle, self.wfile, 1 << 20)  # streamed: checkpoints can be large


def make_server(host: str = "127.0.0.1", port: int = 8765, *, store: Store | str | Path | None = None,
                allow_remote: bool = False, allowed_hosts: set[str] | None = None,
                token: str | None = None) -> UIServer:
    """Create (not start) the UI server. ``port=0`` picks a free port (see ``server.port``).

    ``token``: require it on every request (default ``AUTOTRACK_UI_TOKEN``; with ``allow_remote``
    a random one when neither is set; see ``server.token`` and ``server.login_url``).
    """
    from .._errors import InvalidArgumentError
    from .._query import _store_for

    if token is None:
        token = os.environ.get("AUTOTRACK_UI_TOKEN") or None
    if token is not None and (not isinstance(token, str) or len(token) < 8 or not token.isprintable()
                              or any(c in token for c in " ;,\"\\")):
        raise InvalidArgumentError("token", "<hidden>", "UI tokens are at least 8 printable characters without "
                                   "spaces, quotes, commas or semicolons; omit it to have one generated")
    if not _is_loopback(host) and not allow_remote:
        raise InvalidArgumentError(
            "host", host, "other addresses than loopback need allow_remote=True (--allow-remote), which also "
            "turns on the token"
        )
    if not _is_loopback(host):
        token = token or new_token()
        print(f"WARNING: autotrack ui is listening on {host}:{port}: anyone who can reach this address and "
              "holds the token can read every run in the store; the traffic is plain HTTP (not encrypted).",
              file=sys.stderr)
    return UIServer(host, port, _store_for(store), allowed_hosts, token)


def serve(host: str = "127.0.0.1", port: int = 8765, *, store: Store | str | Path | None = None,
          allow_remote: bool = False, open_browser: bool = False, allowed_hosts: set[str] | None = None,
          token: str | None = None) -> None:
    """Run the UI until interrupted (Ctrl-C)."""
    server = make_server(host, port, store=store, allow_remote=allow_remote, allowed_hosts=allowed_hosts,
                         token=token)
    print(f"autotrack ui: {server.login_url}  (store: {server.store.location}; Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, (server.login_url,)).start()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start_in_thread(server: UIServer) -> threading.Thread:
    """Serve in a daemon thread (tests, notebooks). Stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="autotrack-ui")
    thread.start()
    time.sleep(0.01)
    return thread
