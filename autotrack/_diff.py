"""Why two runs differ: ``diff_runs(a, b)`` section by section, and a terminal renderer.

Only differences are listed; a section with nothing different is left out of the result. The
result is plain JSON-able data (``autotrack diff A B --json`` prints it as it is)::

    {"a": {...run summary...}, "b": {...},
     "params":      {"changed": {key: [a, b]}, "added": {key: b}, "removed": {key: a}},
     "metrics":     {key: {"goal": "min"|"max", "final": [a, b, b - a], "best": [a, b, b - a]},
                     ...} plus "only_in_a"/"only_in_b": [keys],
     "code":        {"commit": [a, b], "branch": [a, b], "entry_point": [a, b], "argv": [a, b],
                     "patch": "<unified diff between the two uncommitted diffs>",
                     "scripts": {name: "<unified diff>"}, ...},
     "packages":    {"upgraded": {name: [a, b]}, "downgraded": {...}, "changed": {...},
                     "added": {name: b}, "removed": {name: a}},
     "hardware" | "environment" | "seeds" | "data" | "tags": {"changed": ..., "added": ..., "removed": ...},
     "system_metrics": {"changed": {key: [last a, last b]}}}

``system/...`` metrics describe the machine, not the result: they are listed apart, last values only.

"added" means present in B only, "removed" present in A only.

**Best value rule.** A metric's best is its minimum when its key looks like something to
minimise — the last path part (after the final ``/``) contains ``loss``, ``err``, ``rmse``,
``mse``, ``mae``, ``mape``, ``nll``, ``perplexity``/``ppl``, ``wer``/``cer``, ``time``,
``latency`` or ``duration``, or is a rank (``rank_test_score``: rank 1 is the best, whatever the
score) — and its maximum otherwise (accuracy, f1, auc, r2, ...). NaNs are ignored. The rule is in
:func:`metric_goal`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _sections as S
from ._sections import DIFF_ARTIFACT

if TYPE_CHECKING:
    from ._query import RunRecord

_MINIMISE = re.compile(r"loss|err|rmse|mse|mae|mape|nll|perplexity|ppl|wer|cer|time|latency|duration")
_RANK = re.compile(r"(^|[_\-.])rank($|[_\-.])")
#: source artifacts (written by the capture of the ``source`` section)
PATCH_ARTIFACT = DIFF_ARTIFACT
SCRIPT_PREFIX = S.SOURCE_PREFIX
_MAX_TEXT = 2_000_000  # artifacts larger than this are compared by hash only


def metric_goal(key: str) -> str:
    """``"min"`` when lower is better for ``key`` (loss, error, rmse, ...), else ``"max"``."""
    last = key.rsplit("/", 1)[-1].lower()
    return "min" if _RANK.search(last) or _MINIMISE.search(last) else "max"


def _record(run: RunRecord | str) -> RunRecord:
    from ._query import get_run

    return get_run(run) if isinstance(run, str) else run


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one flat dict with dotted keys (``gpus.0.name``)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix] = value
    return out


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def dict_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """changed / added (in b only) / removed (in a only) between two flat dicts; empty parts left out."""
    changed = {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if not _same(a[k], b[k])}
    added = {k: b[k] for k in sorted(b.keys() - a.keys())}
    removed = {k: a[k] for k in sorted(a.keys() - b.keys())}
    out: dict[str, Any] = {}
    for name, part in (("changed", changed), ("added", added), ("removed", removed)):
        if part:
            out[name] = part
    return out


def _version_key(version: str) -> Any:
    try:
        from packaging.version import Version

        return (0, Version(version))
    except Exception:  # noqa: BLE001 - packaging missing or not a PEP 440 version
        parts = re.findall(r"\d+", str(version))
        return (1, tuple(int(p) for p in parts)) if parts else None


def _packages(section: dict[str, Any]) -> dict[str, str]:
    return S.packages(section)


def package_diff(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    base = dict_diff(a, b)
    out: dict[str, Any] = {}
    for name, (va, vb) in base.pop("changed", {}).items():
        ka, kb = _version_key(va), _version_key(vb)
        try:
            kind = "upgraded" if kb > ka else "downgraded"  # type: ignore[operator]
        except TypeError:
            kind = "changed"
        out.setdefault(kind, {})[name] = [va, vb]
    out.update(base)
    return out


def _metrics(ra: RunRecord, rb: RunRecord) -> dict[str, Any]:
    sa, sb = ra.metric_stats(), rb.metric_stats()
    out: dict[str, Any] = {}
    for key in sorted(sa.keys() & sb.keys()):
        if key.startswith("system/"):
            continue  # machine measurements, not results: see _system_metrics
        goal = metric_goal(key)
        final = [sa[key]["last"], sb[key]["last"]]
        best = [sa[key][goal], sb[key][goal]]
        if _same(final[0], final[1]) and _same(best[0], best[1]):
            continue
        out[key] = {"goal": goal, "final": final + [_delta(*final)], "best": best + [_delta(*best)]}
    if only_a := sorted(sa.keys() - sb.keys()):
        out["only_in_a"] = only_a
    if only_b := sorted(sb.keys() - sa.keys()):
        out["only_in_b"] = only_b
    return out


def _system_metrics(ra: RunRecord, rb: RunRecord) -> dict[str, Any]:
    """``system/...`` keys: last values side by side (no "best": they describe the machine)."""
    sa, sb = ra.metric_stats(), rb.metric_stats()
    out = {}
    for key in sorted(k for k in sa.keys() & sb.keys() if k.startswith("system/")):
        x, y = sa[key]["last"], sb[key]["last"]
        if not _same(x, y):
            out[key] = [x, y]
    return {"changed": out} if out else {}


def _delta(x: float | None, y: float | None) -> float | None:
    if x is None or y is None:
        return None
    return y - x


def artifact_text(record: RunRecord, name: str) -> str | None:
    """The text of the newest non-deleted artifact ``name`` stored in the run, or None."""
    found = [a for a in record.artifacts if a.name == name and not a.deleted and a.stored and a.path]
    if not found:
        return None
    path = Path(found[-1].path)  # type: ignore[arg-type]
    try:
        if path.stat().st_size > _MAX_TEXT:
            return f"<{path.stat().st_size} bytes, sha256 {found[-1].sha256}>"
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def source_artifacts(record: RunRecord) -> dict[str, Any]:
    """The run's ``source/...`` artifacts (newest of each name, not deleted) by name."""
    out = {}
    for art in record.artifacts:
        if art.name.startswith(SCRIPT_PREFIX) and not art.deleted:
            out[art.name] = art
    return out


def _text_diff(x: str | None, y: str | None, name_a: str, name_b: str) -> str:
    lines = difflib.unified_diff(
        (x or "").splitlines(keepends=True), (y or "").splitlines(keepends=True), name_a, name_b, n=2
    )
    return "".join(lines)


def _code(ra: RunRecord, rb: RunRecord) -> dict[str, Any]:
    sa, sb = ra.info("source"), rb.info("source")
    ga = sa.get("git") if isinstance(sa.get("git"), dict) else {}
    gb = sb.get("git") if isinstance(sb.get("git"), dict) else {}
    out: dict[str, Any] = {}
    for key in ("commit", "branch", "remote", "dirty"):
        if not _same(ga.get(key), gb.get(key)):
            out[key] = [ga.get(key), gb.get(key)]
    for key in ("entry_point", "argv", "cwd"):
        if not _same(sa.get(key), sb.get(key)):
            out[key] = [sa.get(key), sb.get(key)]
    rest = dict_diff(
        flatten({k: v for k, v in sa.items() if k not in ("git", "entry_point", "argv", "cwd")}),
        flatten({k: v for k, v in sb.items() if k not in ("git", "entry_point", "argv", "cwd")}),
    )
    if rest:
        out["other"] = rest
    arts_a, arts_b = source_artifacts(ra), source_artifacts(rb)
    for name in sorted(arts_a.keys() | arts_b.keys()):
        x, y = arts_a.get(name), arts_b.get(name)
        if x is not None and y is not None and x.sha256 == y.sha256:
            continue
        text = _text_diff(
            artifact_text(ra, name) if x else None, artifact_text(rb, name) if y else None,
            f"a/{name} ({ra.id[:8]})", f"b/{name} ({rb.id[:8]})",
        )
        if name == PATCH_ARTIFACT:
            out["patch"] = text
        else:
            out.setdefault("scripts", {})[name[len(SCRIPT_PREFIX):]] = text
    return out


def _environment(ea: dict[str, Any], eb: dict[str, Any]) -> dict[str, Any]:
    """Everything of the environment section except the package list: env vars, Python, OS."""
    strip = ("packages",)
    return dict_diff(flatten({k: v for k, v in ea.items() if k not in strip}),
                     flatten({k: v for k, v in eb.items() if k not in strip}))


def _summary(record: RunRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status}


def diff_runs(a: RunRecord | str, b: RunRecord | str) -> dict[str, Any]:
    """Why run ``b`` differs from run ``a``, section by section (see the module docstring)."""
    ra, rb = _record(a), _record(b)
    result: dict[str, Any] = {"a": _summary(ra), "b": _summary(rb)}
    sections: list[tuple[str, dict[str, Any]]] = [
        ("params", dict_diff(ra.params, rb.params)),
        ("metrics", _metrics(ra, rb)),
        ("code", _code(ra, rb)),
        ("packages", package_diff(_packages(ra.info("environment")), _packages(rb.info("environment")))),
        ("imports", package_diff(S.as_dict(S.read(ra, "imports").get("distributions")),
                                 S.as_dict(S.read(rb, "imports").get("distributions")))),
        ("hardware", dict_diff(flatten(ra.info("hardware")), flatten(rb.info("hardware")))),
        ("environment", _environment(ra.info("environment"), rb.info("environment"))),
        ("seeds", dict_diff(flatten(ra.info("seeds")), flatten(rb.info("seeds")))),
        ("data", dict_diff(flatten(ra.info("data")), flatten(rb.info("data")))),
        ("tags", dict_diff(ra.tags, rb.tags)),
        ("system_metrics", _system_metrics(ra, rb)),
    ]
    for name, part in sections:
        if part:
            result[name] = part
    return result


# -- rendering --------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """A recorded value as display text, rich markup escaped (values are data, not markup)."""
    from rich.markup import escape

    return escape(_plain(value))


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=repr)
    return str(value)


def _signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.4g}"


def render_diff(diff: dict[str, Any], console: Any = None) -> None:
    """Print a diff from :func:`diff_runs` with rich: one titled table per differing section."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    from rich.markup import escape

    console = console or Console()
    a, b = diff["a"], diff["b"]
    for label, run in (("A", a), ("B", b)):
        console.print(f"[bold]{label}[/] " + escape(f"{run['id'][:8]} {run['name']} ({run['experiment']}, {run['status']})"))
    shown = False

    def changes(title: str, part: dict[str, Any]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("key", style="cyan", overflow="fold")
        table.add_column("A", overflow="fold")
        table.add_column("B", overflow="fold")
        for kind in ("changed", "upgraded", "downgraded"):
            for key, (x, y) in part.get(kind, {}).items():
                label = f"{escape(key)} [dim]({kind})[/]" if kind != "changed" else escape(key)
                table.add_row(label, _fmt(x), _fmt(y))
        for key, y in part.get("added", {}).items():
            table.add_row(f"{escape(key)} [green](added)[/]", "", _fmt(y))
        for key, x in part.get("removed", {}).items():
            table.add_row(f"{escape(key)} [red](removed)[/]", _fmt(x), "")
        console.print(table)

    for section in ("params", "tags"):
        if section in diff:
            changes(section, diff[section])
            shown = True
    if "metrics" in diff:
        shown = True
        metrics = diff["metrics"]
        table = Table(title="metrics", title_justify="left")
        for col in ("key", "final A", "final B", "Δ", "best A", "best B", "Δ"):
            table.add_column(col, overflow="fold")
        for key, m in metrics.items():
            if key in ("only_in_a", "only_in_b"):
                continue
            f, bst = m["final"], m["best"]
            table.add_row(f"{escape(key)} [dim]({m['goal']})[/]", _fmt(f[0]), _fmt(f[1]), _signed(f[2]),
                          _fmt(bst[0]), _fmt(bst[1]), _signed(bst[2]))
        console.print(table)
        for side, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
            if metrics.get(side):
                console.print(f"  metrics {label}: " + escape(", ".join(metrics[side])))
    if "code" in diff:
        shown = True
        code = diff["code"]
        table = Table(title="code", title_justify="left")
        table.add_column("key", style="cyan")
        table.add_column("A", overflow="fold")
        table.add_column("B", overflow="fold")
        for key, value in code.items():
            if key in ("patch", "scripts", "other"):
                continue
            table.add_row(escape(key), _fmt(value[0]), _fmt(value[1]))
        if table.row_count:
            console.print(table)
        if "other" in code:
            changes("code (other source fields)", code["other"])
        if code.get("patch"):
            console.print("[bold]uncommitted changes differ:[/]")
            console.print(Syntax(code["patch"], "diff", theme="ansi_dark", word_wrap=True))
        for name, text in code.get("scripts", {}).items():
            console.print(f"[bold]entry script {escape(name)} differs:[/]")
            console.print(Syntax(text, "diff", theme="ansi_dark", word_wrap=True))
    for section in ("packages", "imports", "hardware", "environment", "seeds", "data", "system_metrics"):
        if section in diff:
            changes(section, diff[section])
            shown = True
    if not shown:
        console.print("No differences: same params, metrics, code, packages, hardware, environment, seeds and data.")
