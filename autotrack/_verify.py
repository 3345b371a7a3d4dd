"""``verify(run, directory)``: a reproduction that proves itself.

Writes the run's bundle (:func:`autotrack._reproduce.reproduce`) into ``directory``, builds its
environment there (a venv; ``--system-site-packages`` by default so that it builds offline from the
packages this interpreter already has, then ``pip install -r requirements.txt`` from the configured
indexes for anything missing or at another version), reruns the recorded command so that the rerun
is itself a recorded run in the same store, tagged ``reproduces=<original id>``, and compares
ORIGINAL with RERUN:

- metrics: each series (steps and values) equal exactly, equal within ``tolerance`` (relative and
  absolute), or different; ``system/...`` metrics and timings (``*time*``, ``duration``, ...) describe
  the machine, not the result, and are not compared;
- code: commit, uncommitted diff, entry script and local modules by content (the folder it ran from
  differs by design and is not a difference);
- packages: the imported distributions; hardware; seeds (values, not the time of the call).

The verdict is ``reproduced exactly``, ``reproduced within tolerance`` or ``not reproduced``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _sections as S
from ._diff import diff_runs, flatten, source_artifacts
from ._errors import AutotrackError, InvalidArgumentError

if TYPE_CHECKING:
    from ._query import RunRecord

EXACT = "reproduced exactly"
WITHIN = "reproduced within tolerance"
FAILED = "not reproduced"
_TIMING = re.compile(r"time|duration|latency|per_sec|per_second|throughput|samples_per|it_s")
#: hardware keys that say how the process used the machine, not what the machine is
_HW_VOLATILE = ("torch.cuda_initialized",)


class ReproductionError(AutotrackError):
    """The rerun did not run to its end (its output is in ``output``)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def _store_root(record: RunRecord) -> str:
    return record.store.location  # the store the original lives in receives the rerun (a folder or a URL)


def _compared(key: str) -> bool:
    return not key.startswith("system/") and not _TIMING.search(key.rsplit("/", 1)[-1].lower())


def _series_equal(a: Any, b: Any) -> bool:
    import numpy as np

    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def compare_metrics(original: RunRecord, rerun: RunRecord, tolerance: float) -> dict[str, Any]:
    import numpy as np

    keys_a = {k for k in original.metric_keys if _compared(k)}
    keys_b = {k for k in rerun.metric_keys if _compared(k)}
    exact, within, differ = [], {}, {}
    for key in sorted(keys_a & keys_b):
        sa, va, _ = original.metric_arrays(key)
        sb, vb, _ = rerun.metric_arrays(key)
        if _series_equal(sa, sb) and _series_equal(va, vb):
            exact.append(key)
        elif _series_equal(sa, sb) and np.allclose(va, vb, rtol=tolerance, atol=tolerance, equal_nan=True):
            finite = np.isfinite(va) & np.isfinite(vb)
            within[key] = float(np.max(np.abs(va[finite] - vb[finite]))) if finite.any() else 0.0
        else:
            last_a = float(va[-1]) if len(va) else None
            last_b = float(vb[-1]) if len(vb) else None
            differ[key] = {"points": [int(len(va)), int(len(vb))], "last": [last_a, last_b]}
    skipped = sorted(k for k in set(original.metric_keys) | set(rerun.metric_keys) if not _compared(k))
    return {"exact": exact, "within_tolerance": within, "differ": differ, "only_in_original": sorted(keys_a - keys_b),
            "only_in_rerun": sorted(keys_b - keys_a), "not_compared": skipped}


def compare_code(original: RunRecord, rerun: RunRecord) -> dict[str, Any]:
    ga, gb = S.git_info(original.info("source")), S.git_info(rerun.info("source"))
    out: dict[str, Any] = {}
    if ga.get("commit") != gb.get("commit"):
        out["commit"] = [ga.get("commit"), gb.get("commit")]
    arts_a = {k: a.sha256 for k, a in source_artifacts(original).items()}
    arts_b = {k: a.sha256 for k, a in source_artifacts(rerun).items()}
    changed = sorted(k for k in arts_a.keys() & arts_b.keys() if arts_a[k] != arts_b[k])
    missing = sorted(arts_a.keys() - arts_b.keys())
    if changed:
        out["changed"] = changed
    if missing:
        out["missing_in_rerun"] = missing
    sa, sb = original.info("source"), rerun.info("source")
    if sa.get("argv") != sb.get("argv"):
        out["argv"] = [sa.get("argv"), sb.get("argv")]
    return out


def _seed_values(section: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in section.items() if k not in ("calls", "schema")}
    values["calls"] = [(c.get("function"), c.get("seed")) for c in section.get("calls") or [] if isinstance(c, dict)]
    return values


def compare(original: RunRecord, rerun: RunRecord, tolerance: float = 1e-6) -> dict[str, Any]:
    """Everything ``verify`` says about ORIGINAL against RERUN, with the ``verdict``."""
    metrics = compare_metrics(original, rerun, tolerance)
    code = compare_code(original, rerun)
    diff = diff_runs(original, rerun)
    packages = diff.get("imports") or {}
    hardware = {k: v for k, v in (diff.get("hardware") or {}).get("changed", {}).items() if k not in _HW_VOLATILE}
    sa, sb = _seed_values(original.info("seeds")), _seed_values(rerun.info("seeds"))
    seeds = {k: [sa.get(k), sb.get(k)] for k in sorted(sa.keys() | sb.keys()) if sa.get(k) != sb.get(k)}
    params = diff.get("params") or {}
    compared = metrics["exact"] or metrics["within_tolerance"] or metrics["differ"]
    if metrics["differ"] or metrics["only_in_original"] or not compared:
        verdict = FAILED
    elif metrics["within_tolerance"]:
        verdict = WITHIN
    else:
        verdict = EXACT
    return {"verdict": verdict, "original": original.id, "rerun": rerun.id, "tolerance": tolerance,
            "metrics": metrics, "params": params, "code": code, "packages": packages, "hardware": hardware,
            "seeds": seeds}


def _find_rerun(original: RunRecord, store: Path, since: float) -> RunRecord:
    from ._query import get_run, runs

    frame = runs(store=store, order_by="start")
    column = "tags.reproduces"
    if column not in frame.columns:
        raise ReproductionError(f"the rerun recorded no run tagged reproduces={original.id} in {store}")
    mine = frame[(frame[column] == original.id) & (frame["start"].map(lambda t: t.timestamp()) >= since - 1)]
    if mine.empty:
        raise ReproductionError(f"the rerun recorded no run tagged reproduces={original.id} in {store}")
    top = mine[mine["parent_id"].isna()]
    pool = top if not top.empty else mine
    named = pool[pool["name"] == original.name]
    if original.parent_id is None and not named.empty:
        pool = named
    return get_run(str(pool["id"].iloc[0]), store=store)


def verify(run: str | RunRecord, directory: str | os.PathLike[str], *, tolerance: float = 1e-6,
           system_site_packages: bool = True, timeout: float | None = None,
           echo: Any = None) -> dict[str, Any]:
    """Rebuild ``run``'s environment in ``directory``, rerun it under autotrack, compare (see the
    module docstring). Returns :func:`compare`'s result plus ``bundle``; raises ReproductionError
    when the rerun fails."""
    from ._query import get_run
    from ._reproduce import reproduce

    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InvalidArgumentError("tolerance", tolerance, "pass a number >= 0, e.g. 1e-6")
    record = get_run(run) if isinstance(run, str) else run
    store = _store_root(record)
    bundle = reproduce(record, directory)
    script = (bundle / "reproduce.sh").read_text()
    env = {
        **os.environ,
        "AUTOTRACK_STORE": str(store),
        "AUTOTRACK_REPRODUCES": record.id,
        "AUTOTRACK_CAPTURE": "1",  # the rerun's code, packages and machine are what is compared
        "PYTHON": os.environ.get("PYTHON") or sys.executable,
        "VENV_OPTIONS": "--system-site-packages" if system_site_packages else "",
        "WORKDIR": str(bundle / "workdir"),
    }
    if "import autotrack" not in script and "UNDER_AUTOTRACK" not in os.environ:
        env["UNDER_AUTOTRACK"] = "1"
    # the rerun is recorded by the autotrack the venv imports: this one, when it is not installed there
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    started = time.time()
    proc = subprocess.run(["bash", str(bundle / "reproduce.sh")], cwd=bundle, env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    (bundle / "rerun.log").write_text(output)
    if echo is not None and output.strip():
        echo(output.rstrip())
    if proc.returncode != 0:
        raise ReproductionError(f"the rerun exited with status {proc.returncode}; its output is in "
                                f"{bundle / 'rerun.log'}:\n" + output[-4000:], output)
    rerun = _find_rerun(record, store, started)
    result = compare(record, rerun, tolerance)
    result["bundle"] = str(bundle)
    return result


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def render_verdict(result: dict[str, Any]) -> str:
    """The verdict as plain lines for the terminal."""
    m = result["metrics"]
    lines = [f"Original {result['original'][:8]}, rerun {result['rerun'][:8]}: {result['verdict'].upper()}"]
    lines.append(f"  metrics identical: {', '.join(m['exact']) or 'none'}")
    if m["within_tolerance"]:
        lines.append(f"  metrics within tolerance {result['tolerance']:g}: "
                     + ", ".join(f"{k} (max |Δ| {_fmt(v)})" for k, v in m["within_tolerance"].items()))
    for key, d in m["differ"].items():
        lines.append(f"  metric {key} differs: last {_fmt(d['last'][0])} -> {_fmt(d['last'][1])}, "
                     f"points {d['points'][0]} -> {d['points'][1]}")
    if m["only_in_original"]:
        lines.append(f"  metrics the rerun did not record: {', '.join(m['only_in_original'])}")
    if m["only_in_rerun"]:
        lines.append(f"  metrics only the rerun recorded: {', '.join(m['only_in_rerun'])}")
    if m["not_compared"]:
        lines.append(f"  not compared (machine metrics and timings): {len(m['not_compared'])} key(s)")
    for title, part in (("params", result["params"]), ("code", result["code"]), ("packages", result["packages"]),
                        ("hardware", result["hardware"]), ("seeds", result["seeds"])):
        lines.append(f"  {title}: " + ("same" if not part else "differ: " + ", ".join(
            f"{k} {v}" for k, v in flatten(part).items())[:600]))
    return "\n".join(lines)
