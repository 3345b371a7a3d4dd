"""Issue 15 (core): what capture, reproduce and the CLI got wrong on real third-party scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import autotrack
from autotrack._cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _env(store: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_CAPTURE": "1",
            "AUTOTRACK_SYSTEM_METRICS": "0", **extra}


def _only_run(store: Path):
    (run_id,) = autotrack.runs(store=store)["id"]
    return autotrack.get_run(run_id, store=store)


def test_without_git_local_modules_are_stored_and_restored(tmp_path):
    work = tmp_path / "plain"
    (work / "pkg").mkdir(parents=True)
    (work / "model.py").write_text("SCALE = 3\n")
    (work / "pkg" / "__init__.py").write_text("")
    (work / "pkg" / "data.py").write_text("TOKEN = 'sk-live-abcdefghijklmnopqrstuvwx'\ndef rows():\n    return [1, 2, 3]\n")
    (work / "train.py").write_text(textwrap.dedent('''
        import sys, types
        import autotrack, model
        from pkg import data
        # what `import torch` leaves in sys.modules: torch._classes says its __file__ is "_classes.py"
        sys.modules["_classes"] = types.ModuleType("_classes")
        sys.modules["_classes"].__file__ = "_classes.py"
        with autotrack.start_run() as run:
            run.log_metric("train/loss", model.SCALE * sum(data.rows()))
    '''))
    store = tmp_path / "store"
    env = _env(store, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run([sys.executable, "train.py"], cwd=work, env=env, check=True, capture_output=True, timeout=120)
    rec = _only_run(store)
    mods = {m["path"]: m for m in rec.info("source")["local_modules"]}
    assert set(mods) == {"model.py", "pkg/__init__.py", "pkg/data.py"}
    from autotrack._reproduce import reproduce

    bundle = reproduce(rec, tmp_path / "bundle")
    assert (bundle / "code" / "model.py").read_text() == "SCALE = 3\n"
    stored = (bundle / "code" / "pkg" / "data.py").read_text()
    assert "sk-live" not in stored and "def rows" in stored  # secret-filtered
    readme = (bundle / "README.md").read_text()
    assert "model.py" in readme and "_classes" not in readme and "not stored" not in readme
    # the bundle runs from a relative PYTHON after its cd
    wrapper = tmp_path / "py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    out = subprocess.run(["bash", str(bundle / "reproduce.sh")], cwd=tmp_path, timeout=120, capture_output=True, text=True,
                         env={**env, "SKIP_INSTALL": "1", "PYTHON": "./py", "WORKDIR": "w"})
    assert out.returncode == 0, out.stderr
    losses = sorted(autotrack.get_run(i, store=store).summary["train/loss"] for i in autotrack.runs(store=store)["id"])
    assert losses == [18.0, 18.0]


SCIPY_THEN_SEED = textwrap.dedent('''
    import autotrack
    autotrack.autolog()
    import numpy as np
    import scipy.stats  # builds its docstrings with numpy.random.default_rng
    with autotrack.start_run() as run:
        np.random.seed(7)
        rng = np.random.default_rng(np.random.default_rng(5))
    print(run.id)
''')


def test_seeds_only_from_user_code_and_never_addresses(tmp_path):
    pytest.importorskip("scipy")
    store = tmp_path / "store"
    script = tmp_path / "s.py"
    script.write_text(SCIPY_THEN_SEED)
    out = subprocess.run([sys.executable, str(script)], env=_env(store), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seeds = autotrack.get_run(out.stdout.split()[-1], store=store).info("seeds")
    assert [c["function"] for c in seeds["calls"]] == ["numpy.random.seed", "numpy.random.default_rng",
                                                        "numpy.random.default_rng"]
    assert seeds["numpy"] == 7 and seeds["numpy_default_rng"] == [5]
    assert all(c["caller"].startswith(str(script)) for c in seeds["calls"])
    assert "0x" not in json.dumps(seeds)


def test_params_holding_addresses_are_stable(store):
    np = pytest.importorskip("numpy")
    stats = pytest.importorskip("scipy.stats")

    class Scaler:
        def __init__(self):
            self.factor = 2
            self.callback = None

    ids = []
    for _ in range(2):
        with autotrack.start_run(params={"dist": stats.loguniform(1e-3, 1e-1), "grid": np.arange(4.0),
                                         "obj": Scaler()}) as run:
            pass
        ids.append(run.id)
    a, b = (autotrack.get_run(i).params for i in ids)
    assert a == b
    assert a["dist"] == "scipy.stats.loguniform(0.001, 0.1)"
    assert a["grid"].startswith("numpy.ndarray(shape=(4,), dtype=float64, hash=")
    assert a["obj"].endswith("Scaler(callback=None, factor=2)") and "0x" not in a["obj"]


@pytest.mark.parametrize("key,goal", [("rank_test_score", "min"), ("mean_test_score", "max"),
                                      ("search/rank_test_accuracy", "min"), ("val/frank_score", "max")])
def test_rank_is_lower_is_better(key, goal):
    from autotrack._diff import metric_goal

    assert metric_goal(key) == goal


def test_cli_escapes_markup(store):
    with autotrack.start_run(name="[bold]n[/bold]", params={"flags": [True, False], "style": "[red]x[/red]",
                                                           "link": "[link=file:///etc/passwd]click[/link]"}) as run:
        run.log_metric("[blue]m[/blue]", 1.0)
    runner = CliRunner()
    shown = runner.invoke(cli, ["show", run.id, "--store", str(store.root)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for text in ("[true, false]", "[red]x[/red]", "[link=file:///etc/passwd]click[/link]", "[bold]n[/bold]",
                 "[blue]m[/blue]"):
        assert text in shown.output, text
    listed = runner.invoke(cli, ["runs", "--store", str(store.root), "-c", "params.style"], env={"COLUMNS": "200"})
    assert "[red]x[/red]" in listed.output and "[bold]n[/bold]" in listed.output
    compared = runner.invoke(cli, ["compare", run.id, run.id, "--all", "--store", str(store.root)],
                             env={"COLUMNS": "200"})
    assert "[red]x[/red]" in compared.output


def test_runs_says_when_the_list_is_cut(store):
    for _ in range(3):
        with autotrack.start_run():
            pass
    out = CliRunner().invoke(cli, ["runs", "--limit", "2", "--store", str(store.root)])
    assert "showing 2 of 3 runs (use --limit" in out.output
    out = CliRunner().invoke(cli, ["runs", "--store", str(store.root)])
    assert "3 run(s)" in out.output


def test_console_script_runs_a_module_from_the_current_directory(tmp_path):
    script = Path(sys.executable).with_name("autotrack")
    if not script.exists():
        pytest.skip("the autotrack console script is not installed next to this Python")
    (tmp_path / "mymod.py").write_text("import sys\nprint('ran', sys.argv[1:])\n")
    out = subprocess.run([str(script), "run", "-m", "mymod", "--x", "1"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=_env(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    assert "ran ['--x', '1']" in out.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_bundle_installs_autotrack_from_this_project(tmp_path, store):
    from autotrack._reproduce import reproduce

    with autotrack.start_run() as run:
        pass
    rec = autotrack.get_run(run.id)
    bundle = reproduce(rec, tmp_path / "b")
    sh = (bundle / "reproduce.sh").read_text()
    assert "pip install -q autotrack\n" not in sh and "autotrack==" not in sh
    assert "autotrack-ml" in (ROOT / "pyproject.toml").read_text()


def test_a_script_that_trains_nothing_autolog_knows_says_so(tmp_path):
    """A loop updating weights by hand (no torch.optim) records no run under `autotrack run`: it
    says so in one line instead of staying silent; a script that does record a run says nothing."""
    manual = tmp_path / "manual.py"
    manual.write_text("w = 0.0\nfor _ in range(5):\n    w -= 0.1 * (2 * (w - 3))\nprint('w', round(w, 3))\n")
    recorded = tmp_path / "recorded.py"
    recorded.write_text("import autotrack\nwith autotrack.start_run() as run:\n    run.log_metric('x', 1.0)\n")
    store = tmp_path / "store"
    out = subprocess.run([sys.executable, "-m", "autotrack", "run", str(manual)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=_env(store))
    assert out.returncode == 0, out.stderr
    w = 0.0
    for _ in range(5):
        w -= 0.1 * (2 * (w - 3))
    assert out.stdout.strip() == f"w {round(w, 3)}"  # the script ran as it does without autotrack
    assert "no training was detected, so no run was recorded" in out.stderr
    assert len(autotrack.runs(store=store)) == 0
    out = subprocess.run([sys.executable, "-m", "autotrack", "run", str(recorded)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=_env(store))
    assert out.returncode == 0 and "no training was detected" not in out.stderr, out.stderr
    assert len(autotrack.runs(store=store)) == 1
