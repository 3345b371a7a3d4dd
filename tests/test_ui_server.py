"""The UI's HTTP layer with real requests against a real server on 127.0.0.1: artifact ids and
planted symlinks, the token, timeouts, bounded connections and request limits."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import autotrack
from autotrack._ui import _server
from autotrack._ui._server import make_server, start_in_thread

TOKEN = "test-token-0123456789"


@pytest.fixture
def served(store) -> Iterator[Any]:
    servers = []

    def start(**kwargs: Any) -> Any:
        server = make_server("127.0.0.1", 0, store=store, **kwargs)
        start_in_thread(server)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _get(server: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def _run_with_artifact(data: bytes) -> tuple[str, int, str]:
    with autotrack.start_run() as run:
        sha = run.log_bytes(data, "weights.bin", kind="model")
    autotrack.flush()
    art = autotrack.get_run(run.id).artifacts[0]
    return run.id, art.id, sha


def test_artifact_is_served_by_id(store, served):
    _, art_id, _ = _run_with_artifact(b"model bytes")
    status, body, headers = _get(served(), f"/api/artifacts/{art_id}")
    assert (status, body) == (200, b"model bytes")
    assert headers["Content-Disposition"] == 'attachment; filename="weights.bin"'


def test_symlink_planted_in_the_blob_folder_is_not_served(store, served, tmp_path):
    _, art_id, sha = _run_with_artifact(b"model bytes")
    outside = tmp_path / "outside-secret.txt"
    outside.write_bytes(b"PRIVATE DATA OUTSIDE THE STORE")
    blob = store.blobs.path(sha)
    os.chmod(blob, 0o644)
    blob.unlink()
    blob.symlink_to(outside)
    status, body, _ = _get(served(), f"/api/artifacts/{art_id}")
    assert status == 404
    assert b"PRIVATE DATA" not in body


@pytest.mark.parametrize("raw", ["99999999999999999999999", "9223372036854775808", "-1", "0x1", "1e3",
                                 "%D9%A1%D9%A2", "12%00", "%20" + "1", "abc"])
def test_any_bad_artifact_id_is_404(store, served, raw):
    _run_with_artifact(b"x")
    status, body, _ = _get(served(), f"/api/artifacts/{raw}")
    assert status == 404, (raw, body)
    assert "error" in json.loads(body)


def test_token_is_required_on_every_request(store, served):
    server = served(token=TOKEN)
    assert server.login_url.endswith(f"/?token={TOKEN}")
    for path in ("/", "/api/runs", "/static/app.js"):
        assert _get(server, path)[0] == 401
        assert _get(server, path, {"Authorization": "Bearer wrong-token-000000000"})[0] == 401
        assert _get(server, path, {"Cookie": f"{server.cookie_name}=wrong"})[0] == 401
    assert _get(server, "/api/runs", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert _get(server, "/?token=wrong-token")[0] == 401
    # opening the printed URL once logs the browser in with a cookie and drops the token from the URL
    status, _, headers = _get(server, f"/?token={TOKEN}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    pair = cookie.split(";", 1)[0]
    assert _get(server, "/api/runs", {"Cookie": pair})[0] == 200
    assert _get(server, "/", {"Cookie": pair})[0] == 200


def test_token_from_the_environment_and_always_for_remote(store, monkeypatch, capsys):
    monkeypatch.setenv("AUTOTRACK_UI_TOKEN", TOKEN)
    server = make_server("127.0.0.1", 0, store=store)
    assert server.token == TOKEN
    server.server_close()
    monkeypatch.delenv("AUTOTRACK_UI_TOKEN")
    assert make_server("127.0.0.1", 0, store=store).token is None  # loopback: optional
    remote = make_server("0.0.0.0", 0, store=store, allow_remote=True)
    assert remote.token and len(remote.token) >= 32  # generated: never unauthenticated off loopback
    remote.server_close()
    assert "WARNING" in capsys.readouterr().err
    with pytest.raises(autotrack.InvalidArgumentError, match="token"):
        make_server("127.0.0.1", 0, store=store, token="short")


def test_stalled_connection_is_closed(store, served, monkeypatch):
    assert _server.Handler.timeout == _server.REQUEST_TIMEOUT_S  # the standard library's is None: no timeout
    monkeypatch.setattr(_server.Handler, "timeout", 0.3)
    server = served()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1")  # never finishes its headers
    try:
        assert sock.recv(1024) == b""  # the server hung up (before: held forever)
    finally:
        sock.close()
    assert _get(server, "/api/runs")[0] == 200


def test_connections_are_bounded_and_the_rest_get_503(store, served, monkeypatch):
    monkeypatch.setattr(_server, "BUSY_WAIT_S", 0.05)
    server = served()
    server._slots = threading.BoundedSemaphore(2)
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    for s in stalled:
        s.sendall(b"GET / HTTP/1.1\r\n")
    try:
        # the two slots are taken (the accept loop takes them in order): the next one is refused
        for _ in range(100):
            status = _get(server, "/api/runs")[0]
            if status == 503:
                break
        assert status == 503
    finally:
        for s in stalled:
            s.close()
    for _ in range(100):  # slots come back when the stalled connections go
        status = _get(server, "/api/runs")[0]
        if status == 200:
            break
    assert status == 200


def test_many_concurrent_requests_are_all_answered(store, served):
    server = served()
    assert server.request_queue_size >= 128  # the listen backlog (the standard library's is 5)
    results: list[int] = []

    def one() -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/runs", timeout=30) as r:
                results.append(r.status)
        except urllib.error.HTTPError as e:
            results.append(e.code)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200 and set(results) <= {200, 503} and results.count(200) >= 100


def test_request_size_limits(store, served):
    server = served()
    assert _get(server, "/api/runs?x=" + "a" * (_server.MAX_URL + 1))[0] == 414
    headers = {f"X-H{i}": "v" for i in range(150)}
    assert _get(server, "/api/runs", headers)[0] == 431  # too many header lines
