"""The store contract suite runs every test against every backend: the same tests, not a copy per
backend. ``backend_location`` yields where a fresh, empty store lives: a folder for SQLite, a new
database on a real PostgreSQL server (tests/_servers.py) for the team store. Without the server's
binaries the PostgreSQL cases skip with a one-line reason (fail under AUTOTRACK_REQUIRE_SERVERS=1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _servers  # noqa: E402

BACKENDS = ["sqlite", "postgres"]

_started: dict[str, object] = {}


def _server(kind: str):  # -> _servers.PostgresServer | _servers.S3Server
    """One server of each kind per test session, started on first use."""
    if kind not in _started:
        try:
            _started[kind] = _servers.start_postgres() if kind == "postgres" else _servers.start_s3()
        except Exception as exc:  # noqa: BLE001 - any reason it cannot start is a skip reason
            _started[kind] = exc
    server = _started[kind]
    if isinstance(server, Exception):
        _servers.unavailable(f"no {kind} server: {str(server).splitlines()[0][:200]}")
    return server


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in _started.values():
        if not isinstance(server, Exception):
            server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def pg_server() -> _servers.PostgresServer:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'autotrack[postgres]')")
    return _server("postgres")  # type: ignore[return-value]


@pytest.fixture
def s3_server() -> _servers.S3Server:
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'autotrack[s3]')")
    return _server("s3")  # type: ignore[return-value]


@pytest.fixture
def postgres_location(pg_server: _servers.PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A URL of a fresh database; its artifacts go to a folder of this test (not ~/.cache)."""
    if not os.environ.get("AUTOTRACK_ARTIFACTS", "").startswith("s3://"):
        monkeypatch.setenv("AUTOTRACK_ARTIFACTS", str(tmp_path / "team-artifacts"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    return pg_server.new_database()


@pytest.fixture
def s3_artifacts(s3_server: _servers.S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``AUTOTRACK_ARTIFACTS=s3://<fresh bucket>/runs`` with the server's credentials in the environment."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    location = f"s3://{bucket}/runs"
    monkeypatch.setenv("AUTOTRACK_ARTIFACTS", location)
    return location


@pytest.fixture(params=BACKENDS)
def backend_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store")
    else:
        yield request.getfixturevalue(f"{request.param}_location")


@pytest.fixture
def backend(backend_location: str) -> Iterator[object]:
    """A fresh store used for every run the test starts; runs left open are ended afterwards."""
    import autotrack
    from autotrack import _run

    previous = _run._store_override
    st = autotrack.set_store(backend_location)
    yield st
    while (run := autotrack.active_run()) is not None:
        run.end()
    autotrack.flush()
    _run._store_override = previous
