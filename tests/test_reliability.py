"""Faults, load and bad input: training goes on, nothing is silently dropped, nothing leaks.

Disk faults are produced by SQLite itself: ``max_page_count`` makes writes fail exactly as a full
disk does (SQLITE_FULL), ``query_only`` exactly as a read-only file does (SQLITE_READONLY).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import unicodedata
import warnings
from pathlib import Path

import pytest

import autotrack
from autotrack import InvalidArgumentError, StoreError
from autotrack._store import Store

ROOT = Path(__file__).resolve().parents[1]


def _env(store_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store_dir),
            "AUTOTRACK_CAPTURE": "0", "AUTOTRACK_SYSTEM_METRICS": "0", **extra}


class _Fault:
    """Applies a PRAGMA to every connection the store opens, and can lift it again."""

    def __init__(self, store: Store, on: str, off: str) -> None:
        self.on, self.off = on, off
        self.conns: list[sqlite3.Connection] = []
        store.connect_hooks.append(self._hook)

    def _hook(self, conn: sqlite3.Connection) -> None:
        conn.execute(self.on)
        self.conns.append(conn)

    def lift(self) -> None:
        for conn in self.conns:
            conn.execute(self.off)


def _train(run: autotrack.Run, steps: int) -> list[float]:
    """A stand-in training loop: deterministic arithmetic, logging every step."""
    w, losses = 1.0, []
    for step in range(steps):
        loss = (w - 0.25) ** 2
        w -= 0.1 * 2 * (w - 0.25)
        run.log_metric("train/loss", loss, step=step)
        losses.append(loss)
    return losses


@pytest.mark.parametrize(
    ("fault", "lift", "reason"),
    [
        ("PRAGMA max_page_count = {pages}", "PRAGMA max_page_count = 1073741823", "full"),
        ("PRAGMA query_only = ON", "PRAGMA query_only = OFF", "readonly"),
    ],
    ids=["disk-full", "read-only"],
)
def test_storage_fault_degrades_to_one_warning_and_loses_nothing(store, monkeypatch, fault, lift, reason):
    monkeypatch.delenv("AUTOTRACK_STRICT")
    run = autotrack.start_run()
    run.flush()
    pages = sqlite3.connect(store.db_path).execute("PRAGMA page_count").fetchone()[0]
    # new connections from now on are faulty; drop the writer's current one so it reconnects
    faulty = _Fault(store, fault.format(pages=pages + 2), lift)
    store.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = _train(run, 20_000)  # training goes on
        assert run.flush(timeout=1.0) is False  # not on disk yet, and it says so
        assert run.degraded
        time.sleep(0.5)  # several failed retries...
    ours = [w for w in caught if "autotrack" in str(w.message)]
    assert len(ours) == 1 and "retried" in str(ours[0].message)  # ...one warning
    faulty.lift()  # space freed / permissions fixed
    assert run.flush(timeout=10.0)
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.metric("train/loss")["value"].tolist() == losses
    assert rec.status == "finished"
    assert reason in rec.degraded["reason"].lower().replace(" ", "").replace("-", "")


def _hold_write_lock(db_path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the database's write lock and holds it for ``seconds``."""
    locker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, time
            conn = sqlite3.connect({str(db_path)!r}, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep({seconds})
            conn.execute("COMMIT")
            """)],
        stdout=subprocess.PIPE, text=True,
    )
    assert locker.stdout.readline().strip() == "locked"
    return locker


def test_locked_database_stalls_nothing_and_loses_nothing(store, monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOTRACK_STRICT")
    monkeypatch.setenv("AUTOTRACK_BUSY_TIMEOUT", "0.2")
    run = autotrack.start_run()
    run.flush()
    store.close()  # reconnect with the short busy timeout
    locker = _hold_write_lock(store.db_path, seconds=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = _train(run, 5_000)
        time.sleep(0.6)
    assert sum("autotrack" in str(w.message) for w in caught) == 1
    locker.wait(timeout=30)
    run.end()  # waits briefly on a store that was failing...
    assert autotrack.flush(timeout=30)  # ...and what it still holds is written once the lock is gone
    rec = autotrack.get_run(run.id)
    assert rec.metric("train/loss")["value"].tolist() == losses
    assert "locked" in rec.degraded["reason"]


@pytest.mark.slow
def test_database_locked_for_sixty_seconds(tmp_path):
    """The issue's scenario at full length, in a child process with default settings."""
    store_dir = tmp_path / "store"
    Store(store_dir).initialise()
    locker = _hold_write_lock(store_dir / "autotrack.db", seconds=60)
    env = _env(store_dir)
    env.pop("AUTOTRACK_STRICT", None)
    trainer = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import time, autotrack
            run = autotrack.start_run(name="patient")
            w = 1.0
            for step in range(60):
                run.log_metric("train/loss", (w - 0.25) ** 2, step=step)
                w -= 0.2 * (w - 0.25)
                time.sleep(1.1)
            print("trained", flush=True)
            """)],
        env=env, capture_output=True, text=True, timeout=200,
    )
    locker.wait(timeout=30)
    assert trainer.returncode == 0 and "trained" in trainer.stdout, trainer.stderr
    rec = autotrack.get_run("patient", store=store_dir)
    assert rec.status == "finished" and len(rec.metric("train/loss")) == 60


def test_corrupt_database_is_set_aside_and_recording_continues(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOTRACK_STRICT")
    folder = tmp_path / "store"
    folder.mkdir()
    garbage = os.urandom(8192)
    (folder / "autotrack.db").write_bytes(garbage)
    autotrack.set_store(folder)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        run = autotrack.start_run()
    losses = _train(run, 100)
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.metric("train/loss")["value"].tolist() == losses
    assert "unreadable" in rec.degraded["reason"]
    (kept,) = folder.glob("autotrack.db.corrupt-*")
    assert kept.read_bytes() == garbage  # the damaged file is kept for recovery, untouched


def test_clean_exit_flushes_everything_queued(tmp_path):
    store_dir = tmp_path / "store"
    subprocess.run(
        [sys.executable, "-c", "import autotrack\nrun = autotrack.start_run(name='bulk')\n"
         "for i in range(100_000): run.log_metric('x', i * 0.5, step=i)\n"],
        env=_env(store_dir), check=True, timeout=60,
    )
    steps, values, _ = autotrack.get_run("bulk", store=store_dir).metric_arrays("x")
    assert steps.tolist() == list(range(100_000)) and values.tolist() == [i * 0.5 for i in range(100_000)]


def test_second_writer_of_a_live_run_is_refused(store):
    run = autotrack.start_run()
    run.log_metric("loss", 1.0)
    run.flush()
    out = subprocess.run(
        [sys.executable, "-c", f"import autotrack\ntry:\n    autotrack.start_run(resume={run.id!r})\n"
         "except autotrack.RunLockedError as e:\n    print('refused:', e)\n"],
        env=_env(store.root), capture_output=True, text=True, timeout=60,
    )
    assert f"refused: run {run.id} is open for writing by process {os.getpid()}" in out.stdout, out.stderr
    run.log_metric("loss", 0.5)
    run.end()
    assert autotrack.get_run(run.id).metric("loss")["value"].tolist() == [1.0, 0.5]  # nothing truncated


def test_resuming_a_crashed_run_appends(tmp_path):
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", "import autotrack, time\nrun = autotrack.start_run(name='r')\n"
         "[run.log_metric('loss', float(i)) for i in range(5)]\nrun.flush()\nprint('ok', flush=True)\ntime.sleep(60)"],
        env=_env(store_dir), stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "ok"
    child.kill()
    child.wait()
    assert autotrack.get_run("r", store=store_dir).status == "crashed"
    autotrack.set_store(store_dir)
    run_id = autotrack.get_run("r").id
    with autotrack.start_run(resume=run_id) as run:
        run.log_metric("loss", 5.0)
    rec = autotrack.get_run(run_id)
    assert rec.status == "finished" and rec.metric("loss")["step"].tolist() == [0, 1, 2, 3, 4, 5]


def test_network_filesystem_uses_rollback_journal(tmp_path, monkeypatch):
    from autotrack.store import sqlite as sqlite_backend

    monkeypatch.setattr(sqlite_backend, "filesystem_type", lambda path: "nfs4")
    st = Store(tmp_path / "nfs-store")
    with pytest.warns(RuntimeWarning, match="network file system"):
        st.initialise()
    assert sqlite3.connect(st.db_path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not Path(str(st.db_path) + "-wal").exists()


def test_durable_store_keeps_acknowledged_writes_through_abrupt_kill(tmp_path):
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import autotrack, time
            autotrack.set_store({str(store_dir)!r}, durable=True)
            run = autotrack.start_run(name="durable")
            import sqlite3
            print(run.store._conn().execute("PRAGMA synchronous").fetchone()[0], flush=True)
            for i in range(1000):
                run.log_metric("x", float(i), step=i)
                if i % 100 == 99:
                    run.flush()
                    print(i, flush=True)
            time.sleep(60)
            """)],
        env=_env(store_dir), stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "2"  # synchronous = FULL
    acked = -1
    while acked < 999:
        acked = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    steps, _, _ = autotrack.get_run("durable", store=store_dir).metric_arrays("x")
    assert steps.tolist() == list(range(1000))


@pytest.mark.slow
def test_forty_writers_on_a_fresh_store(tmp_path):
    """8 DDP-style ranks and 32 sweep processes start at once on a store that does not exist yet."""
    store_dir = tmp_path / "store"
    body = textwrap.dedent("""
        import sys, autotrack
        kind, index = sys.argv[1], int(sys.argv[2])
        with autotrack.start_run(name=f"{kind}-{index}", experiment=kind) as run:
            for i in range(3000):
                run.log_metric("loss", index + i / 1e4, step=i)
        """)
    procs = [
        subprocess.Popen([sys.executable, "-c", body, kind, str(i)], env=_env(store_dir),
                         stderr=subprocess.PIPE, text=True)
        for kind, count in (("ddp", 8), ("sweep", 32)) for i in range(count)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs) and not any("locked" in e for e in errors), errors
    conn = sqlite3.connect(store_dir / "autotrack.db")
    from autotrack._store import SCHEMA_VERSION

    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sorted(n for (n,) in conn.execute("SELECT name FROM experiments")) == ["ddp", "sweep"]
    frame = autotrack.runs(store=store_dir)
    assert len(frame) == 40 and set(frame["status"]) == {"finished"}
    (total,) = conn.execute("SELECT sum(count) FROM metric_keys").fetchone()
    assert total == 40 * 3000


def test_reader_polling_a_long_run_keeps_wal_bounded(store):
    run = autotrack.start_run()
    run.flush()  # readers see what is stored; they never drive the writer
    stop = threading.Event()
    reads = []

    def poll() -> None:
        while not stop.is_set():
            reads.append(len(autotrack.runs(store=store)))
            time.sleep(0.05)

    reader = threading.Thread(target=poll)
    reader.start()
    for i in range(1_000_000):
        run.log_metric("x", float(i), step=i)
    run.flush(timeout=60)
    stop.set()
    reader.join()
    run.end()
    assert reads and set(reads) == {1}
    wal = Path(str(store.db_path) + "-wal")
    assert wal.stat().st_size <= 64 * 1024 * 1024  # journal_size_limit
    assert len(autotrack.get_run(run.id).metric("x")) == 1_000_000


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["loss/🔥", unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"), "/", "..",
     "a'; DROP TABLE runs; --", "100%_done", "k" * 500],
)
def test_odd_keys_round_trip_exactly(store, key):
    with autotrack.start_run() as run:
        run.log_metric(key, 1.5)
        run.log_params({key: "v"})
    rec = autotrack.get_run(run.id)
    assert rec.summary == {key: 1.5} and rec.params == {key: "v"}


def test_nfc_and_nfd_forms_stay_distinct_keys(store):
    nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
    with autotrack.start_run() as run:
        run.log_metric(nfc, 1.0)
        run.log_metric(nfd, 2.0)
    assert autotrack.get_run(run.id).summary == {nfc: 1.0, nfd: 2.0}


@pytest.mark.parametrize("key", ["", "a\x00b", "k" * 10_000])
def test_unusable_keys_get_a_clear_error(store, key):
    with autotrack.start_run() as run:
        with pytest.raises(InvalidArgumentError) as info:
            run.log_metric(key, 1.0)
    assert info.value.value == key


def test_tensor_and_huge_int_values(store):
    torch = pytest.importorskip("torch")
    with autotrack.start_run() as run:
        run.log_metric("bf16", torch.tensor(0.1, dtype=torch.bfloat16))
        run.log_metric("big", 2**63)
        run.log_metric("bigger", 2**80)
    rec = autotrack.get_run(run.id)
    assert rec.summary["bf16"] == torch.tensor(0.1, dtype=torch.bfloat16).item()
    assert rec.summary["big"] == float(2**63) and rec.summary["bigger"] == float(2**80)


def test_pathological_params_never_raise(store, tmp_path):
    handle = open(tmp_path / "f.txt", "w")
    circular: dict = {}
    circular["me"] = circular
    with autotrack.start_run() as run:
        run.log_params({"s": "x" * 10_000_000, "l": list(range(10**6)), "fn": lambda x: x, "file": handle, "c": circular})
    handle.close()
    rec = autotrack.get_run(run.id)
    assert rec.truncated_params["s"] == 10_000_000
    assert rec.truncated_params["l"] == len(repr(list(range(10**6))))
    assert rec.params["fn"].startswith("<function") and rec.params["file"].startswith("<_io.TextIOWrapper")
    assert rec.params["c.me"] == "<circular reference>"


def test_identical_concurrent_artifact_writes_leave_one_valid_blob(store, tmp_path):
    payload = os.urandom(1 << 20)
    files = []
    for i in range(8):
        f = tmp_path / f"copy{i}.bin"
        f.write_bytes(payload)
        files.append(f)
    run = autotrack.start_run()
    threads = [threading.Thread(target=run.log_artifact, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.end()
    blobs = [p for p in (store.root / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and hashlib.sha256(blobs[0].read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert not any((store.root / "tmp").iterdir())
    assert autotrack.get_run(run.id).read_artifact("copy3.bin") == payload


def test_artifact_hash_is_verified_on_read(store, tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"good")
    with autotrack.start_run() as run:
        sha = run.log_artifact(f)
    blob = store.blobs.path(sha)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil")
    with pytest.raises(StoreError, match="does not match its recorded sha256"):
        autotrack.get_run(run.id).read_artifact("model.bin")


def test_planted_symlink_in_store_is_never_followed(store, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("a")
    with autotrack.start_run() as run:
        sha = run.log_artifact(f)
    blob = store.blobs.path(sha)
    blob.unlink()
    blob.symlink_to("/etc/passwd")
    assert store.blobs.local_path(sha) is None
    with pytest.raises(StoreError, match="missing"):
        autotrack.get_run(run.id).read_artifact("a.txt")


def test_store_is_not_world_writable(tmp_path):
    old = os.umask(0)
    try:
        autotrack.set_store(tmp_path / "open-store")
        f = tmp_path / "x.txt"
        f.write_text("x")
        with autotrack.start_run() as run:
            run.log_artifact(f)
    finally:
        os.umask(old)
    root = tmp_path / "open-store"
    for path in [root, *root.rglob("*")]:
        assert not path.stat().st_mode & stat.S_IWOTH, path
