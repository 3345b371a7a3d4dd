"""Readers show what capture recorded: a run recorded through the real start capture (a tiny
script in a git repository), then reproduce's README, report's machine table, diff and show."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotrack
from autotrack import _sections as S
from autotrack._diff import diff_runs, flatten

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import autotrack
    with autotrack.start_run(name="captured", experiment="sections", params={"lr": 0.5}) as run:
        autotrack.seed_everything(11)
        for step in range(3):
            run.log_metric("train/loss", 1.0 / (step + 1), step=step)
        run.log_metric("val/acc", 0.75, step=2)
        for i in range(14):
            run.log_metric(f"grad_norm/layer{i}", 0.1, step=2)
        run.log_metric("system/cpu_percent", 5.0, step=2)
    print(run.id)
''')

REMOTE = "https://alice:s3cr3t-token@example.com/team/project.git"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tmp = tmp_path_factory.mktemp("captured")
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "train")
    _git(repo, "remote", "add", "origin", REMOTE)
    store = tmp / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_CAPTURE": "1",
           "AUTOTRACK_SYSTEM_METRICS": "0", "VIRTUAL_ENV": "/somewhere/.venv", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    return autotrack.get_run(run_id, store=store), tmp


def test_capture_writes_the_typed_shapes(captured):
    rec, _ = captured
    for name, shape in (("hardware", S.HardwareSection), ("environment", S.EnvironmentSection),
                        ("source", S.SourceSection), ("imports", S.ImportsSection)):
        data = rec.info(name) if name != "imports" else S.read(rec, name)
        assert data["schema"] == S.SCHEMA_VERSION
        unknown = set(data) - set(shape.__annotations__)
        assert not unknown, f"{name} has keys the schema does not declare: {unknown}"
    assert set(rec.info("seeds")) - set(S.SeedsSection.__annotations__) == set()


def test_reproduce_readme_shows_every_recorded_value(captured):
    from autotrack._reproduce import reproduce

    rec, tmp = captured
    hw, env, source = rec.info("hardware"), rec.info("environment"), rec.info("source")
    bundle = reproduce(rec, tmp / "bundle")
    readme = (bundle / "README.md").read_text()
    assert f"- Python: {env['python_version']}" in readme
    assert f"- Commit: {source['git']['commit']} on branch main" in readme
    assert "- Repository: https://example.com/team/project.git" in readme  # the URL, credentials cut
    assert "s3cr3t" not in "".join(p.read_text() for p in bundle.iterdir() if p.is_file())
    assert "DEFAULT_REPO=https://example.com/team/project.git" in (bundle / "reproduce.sh").read_text()
    for value in (hw["hostname"], hw["cpu_model"], hw["kernel"], hw["os_release"] or hw["os"],
                  f"{len(env['packages'])} installed"):
        assert str(value) in readme, value
    assert hw["gpu_reason"] in readme or hw["gpus"][0]["name"] in readme
    # "not recorded" only for what truly is not: this run has no data inputs
    missing = [line for line in readme.splitlines() if "not recorded" in line]
    assert missing == ["- Data inputs: not recorded. Make sure the data is the same as at the time of the run."]
    # final metrics: the results first, machine and per-layer metrics left out
    final = next(line for line in readme.splitlines() if line.startswith("Final metrics:"))
    assert final.startswith("Final metrics: train/loss = 0.333333, val/acc = 0.75")
    assert "system/" not in final and "grad_norm/" not in final
    # env.sh: the allow-listed variables, never the recording machine's venv
    env_sh = (bundle / "env.sh").read_text()
    assert "export OMP_NUM_THREADS=2" in env_sh and "export VIRTUAL_ENV" not in env_sh
    # requirements.txt: what the run imported; requirements-full.txt: everything
    req = (bundle / "requirements.txt").read_text()
    full = (bundle / "requirements-full.txt").read_text()
    imported = S.read(rec, "imports")["distributions"]
    assert "psutil" in imported
    for name, version in imported.items():
        assert f"{name}=={version}" in req
    assert "pytest==" not in req and "pytest==" in full
    assert not re.search(r"^autotrack(-ml)?==", req + full, re.M)  # never the unrelated PyPI project


def test_report_machine_table_shows_every_recorded_value(captured):
    from autotrack._report import write_report

    rec, tmp = captured
    hw, env = rec.info("hardware"), rec.info("environment")
    text = write_report([rec], tmp / "report.html").read_text()
    table = text.split("<h2>Hardware and environment</h2>", 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", table))
    rows = {html.unescape(k): html.unescape(v) for k, v in rows.items()}
    assert rows["python"].startswith(env["python_version"])
    assert rows["cpu"].startswith(hw["cpu_model"]) and f"{hw['cpu_logical_cores']} logical" in rows["cpu"]
    assert rows["host"] == hw["hostname"]
    assert hw["kernel"] in rows["os"]
    assert rows["memory"].startswith(S._bytes(hw["ram_total_bytes"]))
    assert rows["packages"].startswith(f"{len(env['packages'])} installed")
    assert "not recorded" not in table


def test_diff_against_a_bare_run_lists_every_recorded_value(captured, store):
    rec, _ = captured
    with autotrack.start_run(name="bare") as bare:  # capture is off in tests: no sections
        pass
    d = diff_runs(rec, autotrack.get_run(bare.id))
    hw = flatten(rec.info("hardware"))
    assert d["hardware"]["removed"] == {k: v for k, v in hw.items()}
    env = rec.info("environment")
    assert d["environment"]["removed"] == flatten({k: v for k, v in env.items() if k != "packages"})
    assert d["packages"]["removed"] == env["packages"]
    assert d["seeds"]["removed"] == flatten(rec.info("seeds"))
    assert d["imports"]["removed"] == S.read(rec, "imports")["distributions"]
    git = rec.info("source")["git"]
    assert d["code"]["commit"] == [git["commit"], None] and d["code"]["remote"] == ["origin", None]


def test_show_prints_the_machine(captured):
    from click.testing import CliRunner

    from autotrack._cli import cli

    rec, tmp = captured
    result = CliRunner().invoke(cli, ["show", rec.id, "--store", str(tmp / "store")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    hw, env = rec.info("hardware"), rec.info("environment")
    for value in (env["python_version"], hw["cpu_model"], hw["hostname"], hw["kernel"]):
        assert str(value) in result.output
    assert "not recorded" not in result.output.split("machine", 1)[1].split("source", 1)[0]
