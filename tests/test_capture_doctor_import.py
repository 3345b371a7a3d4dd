"""`autotrack doctor` and the import-time promise (no framework, no heavy module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import psutil
from click.testing import CliRunner

import autotrack
from autotrack._capture.doctor import doctor_command

ROOT = Path(__file__).resolve().parents[1]


def test_import_autotrack_leaves_frameworks_out():
    code = (
        "import sys, autotrack\n"
        "heavy = ['torch', 'lightning', 'pytorch_lightning', 'sklearn', 'xgboost', 'pandas', 'numpy',"
        " 'psutil', 'pynvml', 'xxhash']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "print(callable(autotrack.fingerprint) and callable(autotrack.seed_everything))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert out.stdout.split() == ["[]", "True"]


def test_start_hook_is_registered():
    from autotrack import _capture, _run

    assert _capture.capture_at_start in _run._start_hooks


def test_doctor_json_against_truth(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOTRACK_CAPTURE", raising=False)
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")
    store = tmp_path / "store"
    assert isinstance(doctor_command, click.Command)
    result = CliRunner().invoke(doctor_command, ["--json", "--store", str(store)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["hardware"]["cpu_logical_cores"] == os.cpu_count()
    assert data["hardware"]["ram_total_bytes"] == psutil.virtual_memory().total
    assert data["store"]["exists"] is False and not store.exists()  # the doctor never creates a store
    assert data["environment"]["package_count"] > 10
    assert data["environment"]["python_executable"] == sys.executable

    previous = autotrack._run._store_override
    autotrack.set_store(store)
    try:
        with autotrack.start_run():
            pass
        with autotrack.start_run():
            pass
    finally:
        autotrack._run._store_override = previous
    data = json.loads(CliRunner().invoke(doctor_command, ["--json", "--store", str(store)]).output)
    st = data["store"]
    assert st["exists"] and st["integrity"] == "ok" and st["healthy"] is True
    assert st["runs"] == 2 and st["runs_by_status"] == {"finished": 2}
    blobs = [p for p in (store / "artifacts").rglob("*") if p.is_file()]
    assert st["artifact_files"] == len(blobs)
    assert st["artifact_bytes"] == sum(p.stat().st_size for p in blobs)


def test_doctor_text_report(tmp_path):
    store = tmp_path / "nowhere"
    result = CliRunner().invoke(doctor_command, ["--store", str(store)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Hardware" in text and "Store" in text
    assert str(store.resolve()) in text
    assert f"{psutil.cpu_count(logical=False)} physical / {os.cpu_count()} logical cores" in text
    if "gpus      none" in text:
        assert "NVML" in text or "NVIDIA" in text or "nvidia-ml-py" in text


def test_doctor_reports_a_corrupt_store(tmp_path):
    store = tmp_path / "bad"
    store.mkdir()
    (store / "autotrack.db").write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(doctor_command, ["--json", "--store", str(store)])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["store"]["healthy"] is False
