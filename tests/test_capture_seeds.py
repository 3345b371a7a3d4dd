"""Seed capture (patched seeders) and autotrack.seed_everything."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotrack
from autotrack._capture import seeds
from autotrack._errors import InvalidArgumentError
from autotrack._patching import patched

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("AUTOTRACK_CAPTURE", raising=False)
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    seeds.reset()
    original = random.seed
    yield
    seeds.disable_seed_capture()
    seeds.reset()
    assert random.seed is original


def test_random_seed_recorded_into_the_active_run(store):
    seeds.enable_seed_capture()
    with autotrack.start_run() as run:
        random.seed(1234)
        value = random.random()
    assert value == random.Random(1234).random()  # the original still seeds
    section = autotrack.get_run(run.id).info("seeds")
    assert section["random"] == 1234
    assert [c["function"] for c in section["calls"]] == ["random.seed"]


def test_seed_set_before_the_run_is_written_at_start(store):
    seeds.enable_seed_capture()
    random.seed(77)
    with autotrack.start_run() as run:
        pass
    assert autotrack.get_run(run.id).info("seeds")["random"] == 77


def test_no_record_when_capture_is_off(store):
    random.seed(5)
    with autotrack.start_run() as run:
        pass
    assert "seeds" not in autotrack.get_run(run.id).sections


def test_disable_restores_the_originals():
    original = random.seed
    seeds.enable_seed_capture()
    assert random.seed is not original
    assert patched("seeds")
    seeds.disable_seed_capture()
    assert random.seed is original
    assert not patched("seeds")


def test_numpy_seeds(store):
    np = pytest.importorskip("numpy")
    seeds.enable_seed_capture()
    with autotrack.start_run() as run:
        np.random.seed(99)
        a = np.random.rand(3)
        rng = np.random.default_rng(2024)
        b = rng.random(2)
        np.random.default_rng()  # unseeded: not a seed
    np.random.seed(99)
    assert (a == np.random.rand(3)).all()
    assert (b == np.random.default_rng(2024).random(2)).all()
    section = autotrack.get_run(run.id).info("seeds")
    assert section["numpy"] == 99
    assert section["numpy_default_rng"] == [2024]


def test_torch_manual_seed(store):
    torch = pytest.importorskip("torch")
    seeds.enable_seed_capture()
    with autotrack.start_run() as run:
        torch.manual_seed(31)
    assert torch.initial_seed() == 31
    assert autotrack.get_run(run.id).info("seeds")["torch"] == 31


def test_seed_everything_seeds_and_records(store):
    with autotrack.start_run() as run:
        assert autotrack.seed_everything(2027) == 2027
        value = random.random()
    assert value == random.Random(2027).random()
    assert os.environ["PYTHONHASHSEED"] == "2027"
    section = autotrack.get_run(run.id).info("seeds")
    assert section["seed_everything"] == 2027
    assert section["autotrack"] == 2027
    assert "random" in section["seeded"]
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        assert "numpy" in section["seeded"]
        assert np.random.get_state()[1][0] == np.random.RandomState(2027).get_state()[1][0]
    if "torch" in section["seeded"]:
        import torch

        assert torch.initial_seed() == 2027


def test_seed_everything_records_once_even_with_capture_on(store):
    seeds.enable_seed_capture()
    with autotrack.start_run() as run:
        autotrack.seed_everything(11)
    calls = autotrack.get_run(run.id).info("seeds")["calls"]
    assert [c["function"] for c in calls] == ["autotrack.seed_everything"]


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "42", True, None])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(InvalidArgumentError, match="seed"):
        autotrack.seed_everything(bad)  # type: ignore[arg-type]


def test_modules_imported_after_enabling_are_patched(tmp_path):
    pytest.importorskip("numpy")
    script = textwrap.dedent("""\
        import sys
        import autotrack
        from autotrack._capture import enable_seed_capture
        assert "numpy" not in sys.modules
        enable_seed_capture()
        import numpy as np
        autotrack.set_store(sys.argv[1])
        with autotrack.start_run() as run:
            np.random.seed(4321)
        print(run.id)
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_SYSTEM_METRICS": "0", "AUTOTRACK_STRICT": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    rec = autotrack.get_run(out.stdout.strip().splitlines()[-1], store=tmp_path / "s")
    assert rec.info("seeds")["numpy"] == 4321


def test_lightning_seed_everything(store):
    pytest.importorskip("torch")
    seed_module = pytest.importorskip("lightning.fabric.utilities.seed")
    seeds.enable_seed_capture()
    with autotrack.start_run() as run:
        seed_module.seed_everything(808, verbose=False)
    section = autotrack.get_run(run.id).info("seeds")
    assert section["lightning"] == 808
    # the seeders Lightning calls in turn are its own calls, not the program's
    assert "random" not in section and "torch" not in section
    assert [c["function"] for c in section["calls"]] == ["lightning.fabric.utilities.seed.seed_everything"]
