"""``write_report(run_ids, path)``: one self-contained HTML file comparing runs.

The file embeds the same chart code as the web UI (``_ui/static/plots.js`` on the vendored uPlot) and
the data, so it opens with no network and looks like the UI: a runs table, overlaid metric curves
(x-axis step / relative / wall time, log scale, smoothing, legend toggles), system metrics, parallel
coordinates of params against a chosen metric (with brushing), parameter importance, the param diff
(a param a run lacks is an empty cell), hardware and environment summaries, and checkpoints.

Long series are downsampled for display with min/max buckets (:func:`downsample`): each bucket
keeps its lowest and highest point, so spikes and divergence stay visible; the store keeps the
full data. The web UI uses the same functions.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sections import table_columns

if TYPE_CHECKING:
    from ._query import RunRecord

STATIC = Path(__file__).parent / "_ui" / "static"
#: points per series on screen (a plot is ~600 px wide: min/max of ~1000 buckets loses nothing
#: visible); with many runs the total per figure stays under MAX_POINTS_PER_FIGURE so that SVG
#: rendering stays interactive (100 runs: 500 points each).
DEFAULT_POINTS = 2000
MAX_POINTS_PER_FIGURE = 50_000
MIN_POINTS = 200


def points_for(n_runs: int) -> int:
    """Points per series when ``n_runs`` runs share one figure."""
    return max(MIN_POINTS, min(DEFAULT_POINTS, MAX_POINTS_PER_FIGURE // max(1, n_runs)))


def downsample(steps: Any, values: Any, points: int = DEFAULT_POINTS) -> tuple[Any, Any]:
    """At most ``points`` points of a series: the first and last point, and of ``points // 2``
    equal buckets the minimum and the maximum (NaN-aware), in step order. numpy in, numpy out."""
    idx = downsample_index(values, points)
    return (steps, values) if idx is None else (steps[idx], values[idx])


def downsample_index(values: Any, points: int = DEFAULT_POINTS) -> Any:
    """The indices :func:`downsample` keeps (None: all of them), to pick steps, values and times alike."""
    import numpy as np

    n = len(values)
    if n <= points or points < 4:
        return None
    buckets = max(1, (points - 2) // 2)
    size = -(-(n - 2) // buckets)  # ceil
    inner = values[1:-1]
    usable = (len(inner) // size) * size
    idx_parts = [np.array([0])]
    if usable:
        block = inner[:usable].reshape(-1, size)
        low = np.where(np.isnan(block), np.inf, block).argmin(axis=1)
        high = np.where(np.isnan(block), -np.inf, block).argmax(axis=1)
        base = np.arange(block.shape[0]) * size + 1
        idx_parts += [np.sort(np.stack([base + low, base + high], axis=1), axis=1).ravel()]
    if usable < len(inner):
        tail = inner[usable:]
        off = 1 + usable
        idx_parts.append(np.array(sorted({off + int(np.nanargmin(tail)) if not np.isnan(tail).all() else off,
                                          off + int(np.nanargmax(tail)) if not np.isnan(tail).all() else off})))
    idx_parts.append(np.array([n - 1]))
    idx = np.concatenate(idx_parts)
    return idx[np.concatenate([[True], np.diff(idx) != 0])]


def _finite_list(values: Any) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.tolist()]


def series(record: RunRecord, key: str, points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """One metric of one run ready for the plots: ``{"steps", "values", "times", "n"}`` (NaN/inf ->
    null; times in seconds since the epoch, for the wall-time and relative-time axes)."""
    steps, values, times = record.metric_arrays(key)
    n = len(values)
    idx = downsample_index(values, points)
    if idx is not None:
        steps, values, times = steps[idx], values[idx], times[idx]
    return {"steps": steps.tolist(), "values": _finite_list(values), "times": [round(t, 3) for t in times.tolist()],
            "n": int(n)}


def run_payload(record: RunRecord, *, points: int | None = DEFAULT_POINTS, keys: list[str] | None = None,
                sections: bool = True) -> dict[str, Any]:
    """A run as JSON-able data for the report and the UI. ``points=None`` leaves metrics out."""
    data: dict[str, Any] = {
        "id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status,
        "start_time": record.start_time, "end_time": record.end_time, "duration": record.duration,
        "parent_id": record.parent_id, "params": record.params, "tags": record.tags,
        "summary": {k: (v if v is not None and math.isfinite(v) else None) for k, v in record.summary.items()},
    }
    if sections:
        data["sections"] = {name: record.info(name) for name in record.sections}
        data["machine"] = _hw_summary(data["sections"])  # the UI shows the same rows as the report
        data["artifacts"] = [
            {"id": a.id, "name": a.name, "kind": a.kind, "sha256": a.sha256, "size": a.size, "step": a.step,
             "stored": a.stored, "metadata": a.metadata, "deleted": a.deleted}
            for a in record.artifacts
        ]
        data["error"] = record.error
    if points is not None:
        data["metrics"] = {key: series(record, key, points) for key in (keys if keys is not None else record.metric_keys)}
    return data


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, default=repr, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sanitize(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=repr)
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _hw_summary(sections: dict[str, Any]) -> dict[str, str]:
    from ._sections import machine_summary

    return machine_summary(sections.get("hardware") or {}, sections.get("environment") or {})


def render_report(payloads: list[dict[str, Any]], *, metric: str | None = None, title: str = "autotrack report") -> str:
    keys = sorted({k for p in payloads for k in p.get("metrics", {})})
    summary_keys = sorted({k for p in payloads for k in p["summary"] if not k.startswith("system/")})
    if metric is None or metric not in summary_keys:
        metric = next((k for k in ("val/loss", "train/loss") if k in summary_keys), summary_keys[0] if summary_keys else "")
    all_params = sorted({k for p in payloads for k in p["params"]})
    # the columns of the CLI's table: params that differ, then metrics in the readers' order
    param_keys = table_columns({k: [p["params"].get(k) for p in payloads] for k in all_params}, metrics=False, limit=4)
    metric_keys = table_columns({k: [p["summary"].get(k) for p in payloads] for k in summary_keys}, metrics=True,
                                limit=8)
    run_rows = [[p["name"], p["id"][:8], p["experiment"], p["status"], _when(p["start_time"]),
                 None if p["duration"] is None else round(p["duration"], 1)]
                + [p["params"].get(k) for k in param_keys]
                + [p["summary"].get(k) for k in metric_keys]
                for p in payloads]
    show_keys = param_keys + metric_keys
    missing = object()
    differing = [k for k in all_params
                 if len({json.dumps(p["params"][k], default=repr) if k in p["params"] else "\0missing" for p in payloads}) > 1]
    same = [k for k in all_params if k not in differing]
    param_rows = [[k] + [p["params"].get(k, missing) for p in payloads] for k in differing]
    hw_rows = []
    summaries = [_hw_summary(p.get("sections", {})) for p in payloads]
    for field in dict.fromkeys(f for s in summaries for f in s):
        hw_rows.append([field] + [s.get(field, "") for s in summaries])
    ckpt_rows = [[p["name"], a["name"], a["kind"], a["step"], a["size"], (a["sha256"] or "")[:12],
                  json.dumps(a["metadata"]) if a["metadata"] else ""]
                 for p in payloads for a in p.get("artifacts", []) if a["kind"] in ("checkpoint", "model") and not a["deleted"]]
    names = [p["name"] for p in payloads]
    static = STATIC
    uplot_js = (static / "vendor" / "uPlot.iife.min.js").read_text()
    uplot_css = (static / "vendor" / "uPlot.min.css").read_text()
    plots_js = (static / "plots.js").read_text()
    css = (static / "style.css").read_text()
    options = "".join(f'<option{" selected" if k == metric else ""}>{html.escape(k)}</option>' for k in summary_keys)
    lean = [{k: v for k, v in p.items() if k not in ("sections", "artifacts")} for p in payloads]
    data = _sanitize({"runs": lean, "metric": metric, "keys": keys})
    total = sum(len(s["steps"]) for p in payloads for s in p.get("metrics", {}).values())

    def diff_cell(v: Any) -> str:
        if v is missing:
            return '<td class="missing" title="not set in this run"></td>'
        return f"<td>{html.escape(_fmt(v))}</td>"

    diff_html = ("<table class=\"diff\"><thead><tr><th>param</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) +
                 "</tr></thead><tbody>" + "".join("<tr class=\"differs\"><td>" + html.escape(r[0]) + "</td>" +
                                                  "".join(diff_cell(v) for v in r[1:]) + "</tr>" for r in param_rows) +
                 "</tbody></table>") if param_rows else "<p>All runs have the same params.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark"><title>{html.escape(title)}</title>
<style>{uplot_css}</style><style>{css}</style></head>
<body class="report">
<h1>{html.escape(title)}</h1>
<p class="muted">{len(payloads)} runs, generated {_when(datetime.now(timezone.utc).timestamp())} UTC.
Curves are downsampled for display (min/max buckets, {total} points shown); the store keeps the full data.</p>
<section id="sec-runs"><h2>Runs</h2>
<div class="table-wrap">{_table(["name", "id", "experiment", "status", "start (UTC)", "duration (s)"] + show_keys, run_rows, "runs")}</div></section>
<section id="sec-metrics"><h2>Metrics</h2><div id="metrics"></div></section>
<section id="sec-system"><h2>System metrics</h2><div id="system"></div></section>
<section id="sec-params"><h2>Params against a metric</h2>
<div class="controls"><label>metric <select id="pc-metric">{options}</select></label>
<span class="muted">drag along an axis to highlight the runs in a range; click the axis to clear</span></div>
<div id="parcoords" class="wide"></div>
<h3>parameter importance</h3><div id="importance"></div></section>
<section id="sec-diff"><h2>Param diff</h2>
<div class="table-wrap">{diff_html}</div>
{f'<p class="muted">Same in every run: {html.escape(", ".join(same))}</p>' if same else ""}</section>
<section id="sec-machine"><h2>Hardware and environment</h2>
<div class="table-wrap">{_table([""] + names, hw_rows)}</div></section>
<section id="sec-checkpoints"><h2>Checkpoints</h2>
{_table(["run", "name", "kind", "step", "bytes", "sha256", "metadata"], ckpt_rows) if ckpt_rows else "<p>No checkpoints or models recorded.</p>"}</section>
<script>{uplot_js}</script>
<script>{plots_js}</script>
<script type="application/json" id="at-data">{_json_for_script(data)}</script>
<script>
(function () {{
  var data = JSON.parse(document.getElementById("at-data").textContent);
  var split = AT.splitKeys(data.keys);
  var waits = [];
  AT.guard(document.getElementById("metrics"), "charts", function () {{
    if (!split.train.length) {{ document.getElementById("metrics").textContent = "No metric with more than one point."; return; }}
    waits.push(AT.metricPanel(document.getElementById("metrics"), data.runs, split.train).ready);
  }});
  AT.guard(document.getElementById("system"), "system charts", function () {{
    if (!split.system.length) {{ document.getElementById("system").textContent = "No system metrics recorded."; return; }}
    waits.push(AT.metricPanel(document.getElementById("system"), data.runs, split.system).ready);
  }});
  var pc = document.getElementById("parcoords"), sel = document.getElementById("pc-metric");
  function drawPc() {{
    if (!sel.value) {{ pc.textContent = "No metrics recorded."; return; }}
    AT.guard(pc, "parallel coordinates", function () {{ AT.parcoords(pc, data.runs, sel.value); }});
    AT.guard(document.getElementById("importance"), "parameter importance", function () {{ AT.importanceTable(document.getElementById("importance"), data.runs, sel.value); }});
  }}
  sel.addEventListener("change", drawPc);
  drawPc();
  Promise.all(waits).then(function () {{ document.body.setAttribute("data-ready", "report"); }});
}})();
</script>
</body></html>
"""


def report_payloads(records: list[RunRecord], points: int) -> list[dict[str, Any]]:
    """Payloads for the report: the series of every metric with more than one point (per-layer
    gradient norms left out: dozens of charts nobody reads in a report), system metrics included."""
    payloads = []
    for r in records:
        stats = r.metric_stats()
        keys = [k for k, s in stats.items() if s["count"] > 1 and not k.startswith("grad_norm/")]
        payloads.append(run_payload(r, points=points, keys=keys))
    return payloads


def write_report(run_ids: list[str], path: str | Path, *, metric: str | None = None, points: int | None = None,
                 title: str = "autotrack report") -> Path:
    """Write one self-contained HTML report comparing ``run_ids`` to ``path``. ``points`` caps the
    points per series on screen (default: 2000, fewer when many runs share a figure)."""
    from ._errors import InvalidArgumentError
    from ._query import get_run

    if isinstance(run_ids, str):
        run_ids = [run_ids]
    if not run_ids:
        raise InvalidArgumentError("run_ids", run_ids, "pass at least one run id")
    records = [get_run(r) if isinstance(r, str) else r for r in run_ids]
    if points is None:
        points = points_for(len(records))
    payloads = report_payloads(records, points)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(payloads, metric=metric, title=title), encoding="utf-8")
    return out
