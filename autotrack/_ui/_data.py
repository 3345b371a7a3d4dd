"""What the UI's API endpoints answer, read through the public query API (``runs``, ``count_runs``,
``get_run``) and written through the public write API (``RunRecord.set_tags``/``set_note``/
``rename``, ``delete_run``). No SQL and no backend internals here: the HTTP layer in ``_server.py``
only routes to these functions.

A missing param or metric is simply absent from a run's dicts (the page shows an empty cell);
nothing here assumes that two runs have the same keys.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from .._errors import InvalidArgumentError

if TYPE_CHECKING:
    from .._query import RunRecord
    from ..store import Backend

#: rows per page of the runs table (the page may ask for up to MAX_PAGE)
PAGE = 50
MAX_PAGE = 500
#: artifact previews: images are sent inline up to this size, text/CSV/JSON read up to it
PREVIEW_BYTES = 5 << 20
TEXT_PREVIEW_CHARS = 64_000
CSV_PREVIEW_ROWS = 200
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp"}  # no SVG: it can carry script
_TEXT_TYPES = {".txt", ".log", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".py", ".sh", ".out", ".err"}


def _num(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_row(record: RunRecord, children: int = 0) -> dict[str, Any]:
    """One row of the runs table: what the column picker can show (params, tags, and per metric
    last / min / max / count)."""
    stats = record.metric_stats()
    return {
        "id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status,
        "start_time": record.start_time, "end_time": record.end_time, "duration": record.duration,
        "parent_id": record.parent_id, "children": children, "params": record.params, "tags": record.tags,
        "metrics": {k: {"last": _num(s["last"]), "min": _num(s["min"]), "max": _num(s["max"]), "count": s["count"],
                        "last_step": s["last_step"]} for k, s in stats.items()},
    }


def _and(*parts: str | None) -> str | None:
    kept = [p for p in parts if p and p.strip()]
    if not kept:
        return None
    return " and ".join(f"({p})" for p in kept) if len(kept) > 1 else kept[0]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_runs(store: Backend, *, where: str | None = None, order: str | None = None, desc: bool = True,
              limit: int = PAGE, offset: int = 0, nest: bool = True, parent: str | None = None) -> dict[str, Any]:
    """A page of the runs table, filtered, sorted and paged by the store.

    ``nest``: with no filter, only top-level runs are listed and each says how many children it
    has (the page expands them with ``parent``); with a filter every matching run is listed flat.
    ``order`` is a column of the query language (``params.lr``, ``min(metrics.val/loss)``).
    """
    from .._query import count_runs, find_records

    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgumentError("limit", limit, f"ask for 1 to {MAX_PAGE} runs per page")
    where = (where or "").strip() or None
    scope = None
    if parent is not None:
        scope = f"parent_id = {_quote(parent)}"
    elif nest and where is None:
        scope = "parent_id is null"
    query = _and(where, scope)
    order_by = None
    if order:
        order_by = f"{order} {'desc' if desc else 'asc'}"
    records = find_records(where=query, order_by=order_by, limit=limit, offset=offset, store=store)
    total = count_runs(where=query, store=store)
    ids = [r.id for r in records]
    children: dict[str, int] = {}
    if ids and parent is None and (nest and where is None):
        # one indexed lookup per run of the page (a `parent_id in (...)` filter scans every run)
        children = {i: n for i in ids if (n := len(store.children(i)))}
    rows = [run_row(r, children.get(r.id, 0)) for r in records]
    return {"runs": rows, "total": total, "offset": offset, "limit": limit, "where": where, "nested": scope is not None}


#: The value a trial is ranked by: an Optuna trial's objective, a search candidate's mean CV score.
TRIAL_VALUE_KEYS = ("optuna/value", "cv/mean_test_score")


#: The most child runs (a study's trials) the compare page takes at once.
MAX_COMPARED_CHILDREN = 2000


def _trials(children: list[RunRecord]) -> list[dict[str, Any]]:
    """The children that are trials of a search (tag ``trial``: an Optuna study's trials, a
    scikit-learn search's candidates), as rows of the run page's trial table, in trial order."""
    rows = []
    for child in children:
        tags = child.tags
        if "trial" not in tags:
            continue
        stats = child.metric_stats()
        key = next((k for k in TRIAL_VALUE_KEYS if k in stats), None)
        try:
            number: Any = int(tags["trial"])
        except ValueError:
            number = tags["trial"]
        rows.append({"id": child.id, "name": child.name, "status": child.status, "trial": number,
                     "state": tags.get("state"), "pruned_step": tags.get("pruned_step"),
                     "value": _num(stats[key]["last"]) if key else None, "value_key": key,
                     "params": child.params})
    rows.sort(key=lambda r: (not isinstance(r["trial"], int), r["trial"] if isinstance(r["trial"], int) else 0))
    return rows


def run_detail(record: RunRecord) -> dict[str, Any]:
    """The run page: everything but the metric series (those come from ``metrics``)."""
    from .._report import run_payload

    data = run_payload(record, points=None)
    data["note"] = record.note
    data["metric_stats"] = {k: {kk: _num(vv) for kk, vv in s.items()} for k, s in record.metric_stats().items()}
    children = record.children
    data["children"] = [{"id": c.id, "name": c.name, "status": c.status} for c in children]
    data["trials"] = _trials(children)
    data["pid"], data["host"] = record.pid, record.host
    data["degraded"] = record.degraded
    newest: dict[str, int] = {}
    for a in record.artifacts:
        newest[a.name] = a.id
    for a in data["artifacts"]:
        a["preview"] = _preview_kind(a["name"]) if newest.get(a["name"]) == a["id"] and not a["deleted"] else None
        a["reference"] = not a["stored"]
    return data


def metric_series(record: RunRecord, keys: list[str] | None, points: int) -> dict[str, Any]:
    from .._report import series

    wanted = keys if keys is not None else record.metric_keys
    have = set(record.metric_keys)
    return {k: series(record, k, points) for k in wanted if k in have}


def compare(records: list[RunRecord], keys: list[str] | None, points: int) -> dict[str, Any]:
    """Runs side by side: params, tags, per-metric stats, machine rows and the series of ``keys``
    (default: the few metrics most runs share, training curves first)."""
    from .._report import run_payload

    out = []
    for r in records:
        p = run_payload(r, points=None)
        p["metric_stats"] = {k: {kk: _num(vv) for kk, vv in s.items()} for k, s in r.metric_stats().items()}
        out.append(p)
    if keys is None:
        keys = default_chart_keys(out)
    for p, r in zip(out, records):
        p["metrics"] = metric_series(r, keys, points)
    return {"runs": out, "keys": keys}


def default_chart_keys(payloads: list[dict[str, Any]], n: int = 4) -> list[str]:
    """Series (more than one point) shared by the most runs; the usual losses first; no per-layer
    gradient norms or system metrics (those are one click away)."""
    counts: dict[str, int] = {}
    for p in payloads:
        for k, s in p["metric_stats"].items():
            if s["count"] > 1 and not k.startswith(("system/", "grad_norm/")):
                counts[k] = counts.get(k, 0) + 1
    first = ["val/loss", "train/loss", "val_loss", "valid/loss"]
    ranked = sorted(counts, key=lambda k: (first.index(k) if k in first else len(first), -counts[k], k))
    chosen = ranked[:n]
    for p in payloads:  # every run gets a curve when it has a series (XGBoost's val/logloss beside a loss)
        own = [k for k in ranked if k in p["metric_stats"]]
        if own and not any(k in chosen for k in own) and len(chosen) < n + 3:
            chosen.append(own[0])
    return chosen


# -- artifacts -------------------------------------------------------------------------------


def _suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[-1] if "." in base else ""


def _preview_kind(name: str) -> str | None:
    ext = _suffix(name)
    if ext in _IMAGE_TYPES:
        return "image"
    if ext in (".csv", ".tsv"):
        return "table"
    if ext == ".json":
        return "json"
    if ext in _TEXT_TYPES:
        return "text"
    return None


def artifact_preview(record: RunRecord, artifact_id: int) -> dict[str, Any]:
    """An artifact's contents for the page: an image as a data URL, text, or CSV/JSON as a table.
    Read with ``RunRecord.read_artifact`` (verified against its sha256; a reference is read from
    its file while it still exists)."""
    art = next((a for a in record.artifacts if a.id == artifact_id), None)
    if art is None:
        raise InvalidArgumentError("artifact", artifact_id, f"run {record.id[:8]} has no artifact with this id")
    kind = _preview_kind(art.name)
    if kind is None:
        return {"kind": None, "message": "no preview for this kind of file; download it"}
    if (art.size or 0) > PREVIEW_BYTES:
        return {"kind": None, "message": f"too large to preview ({art.size:,} bytes); download it"}
    if [a for a in record.artifacts if a.name == art.name][-1].id != artifact_id:
        return {"kind": None, "message": "an older version of this name; download it"}
    data = record.read_artifact(art.name)
    if kind == "image":
        mime = _IMAGE_TYPES[_suffix(art.name)]
        return {"kind": "image", "src": f"data:{mime};base64," + base64.b64encode(data).decode("ascii")}
    text = data.decode("utf-8", errors="replace")
    if kind == "table":
        dialect = "excel-tab" if _suffix(art.name) == ".tsv" else "excel"
        rows = []
        for i, row in enumerate(csv.reader(io.StringIO(text), dialect)):
            if i > CSV_PREVIEW_ROWS:
                break
            rows.append(row)
        return {"kind": "table", "header": rows[0] if rows else [], "rows": rows[1:CSV_PREVIEW_ROWS + 1],
                "truncated": len(rows) > CSV_PREVIEW_ROWS}
    if kind == "json":
        try:
            value = json.loads(text)
        except ValueError as exc:
            return {"kind": "text", "text": text[:TEXT_PREVIEW_CHARS], "message": f"not valid JSON: {exc}"}
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value[:CSV_PREVIEW_ROWS]):
            header = list(dict.fromkeys(k for v in value[:CSV_PREVIEW_ROWS] for k in v))
            rows = [[_cell(v.get(h)) for h in header] for v in value[:CSV_PREVIEW_ROWS]]
            return {"kind": "table", "header": header, "rows": rows, "truncated": len(value) > CSV_PREVIEW_ROWS}
        if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            return {"kind": "table", "header": ["key", "value"], "rows": [[k, _cell(v)] for k, v in value.items()],
                    "truncated": False}
        return {"kind": "text", "text": json.dumps(value, indent=2, default=repr)[:TEXT_PREVIEW_CHARS]}
    return {"kind": "text", "text": text[:TEXT_PREVIEW_CHARS], "truncated": len(text) > TEXT_PREVIEW_CHARS}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def reference_bytes(record: RunRecord, artifact_id: int) -> tuple[str, bytes]:
    """A reference artifact's file (a checkpoint kept in place), verified against its sha256."""
    art = next((a for a in record.artifacts if a.id == artifact_id), None)
    if art is None or art.stored:
        raise InvalidArgumentError("artifact", artifact_id, "not a reference artifact of this run")
    return art.name, record.read_artifact(art.name)


# -- edits (the public write API: key validation and the secret filter apply) ----------------


def edit_run(record: RunRecord, what: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgumentError("body", body, "send a JSON object")
    if what == "tags":
        tags = body.get("tags") or {}
        remove = body.get("remove") or []
        if not isinstance(tags, dict) or not all(isinstance(k, str) and k for k in tags):
            raise InvalidArgumentError("tags", tags, 'send {"tags": {"name": "value"}, "remove": ["name"]}')
        if not isinstance(remove, list) or not all(isinstance(k, str) for k in remove):
            raise InvalidArgumentError("remove", remove, "send a list of tag names to remove")
        record.set_tags({k: str(v) for k, v in tags.items()}, remove=remove)
    elif what == "note":
        note = body.get("note")
        if not isinstance(note, str):
            raise InvalidArgumentError("note", note, 'send {"note": "markdown text"}')
        record.set_note(note)
    elif what == "name":
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("name", name, 'send {"name": "new name"}')
        record.rename(name.strip())
    else:
        raise InvalidArgumentError("edit", what, "edit one of tags, note, name")
    from .._query import get_run

    fresh = get_run(record.id, store=record.store)
    return {"ok": True, "name": fresh.name, "tags": fresh.tags, "note": fresh.note}


def bulk(store: Backend, body: Any) -> dict[str, Any]:
    """``{"action": "delete"|"tag", "ids": [...], "tags": {...}}`` over several runs; each run's
    failure is reported on its own (a live run is not deleted, the others are)."""
    from .._query import delete_run, get_run

    if not isinstance(body, dict) or not isinstance(body.get("ids"), list) or not body["ids"]:
        raise InvalidArgumentError("ids", body, 'send {"action": "delete", "ids": ["RUN_ID", ...]}')
    ids = [i for i in body["ids"] if isinstance(i, str)]
    action = body.get("action")
    done, errors = [], {}
    for run_id in ids:
        try:
            if action == "delete":
                delete_run(run_id, store=store)
            elif action == "tag":
                edit_run(get_run(run_id, store=store), "tags", {"tags": body.get("tags"), "remove": body.get("remove")})
            else:
                raise InvalidArgumentError("action", action, "choose delete or tag")
            done.append(run_id)
        except InvalidArgumentError as exc:
            if exc.argument == "action":
                raise
            errors[run_id] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one run's failure is reported, the others go on
            errors[run_id] = f"{type(exc).__name__}: {exc}"
    return {"ok": not errors, "done": done, "errors": errors}


# -- the model registry ---------------------------------------------------------------------------


def _version_row(version: Any) -> dict[str, Any]:
    return {"version": version.version, "run_id": version.run_id, "run_deleted": version.run_deleted,
            "artifact": version.artifact, "sha256": version.sha256, "size": version.size,
            "framework": version.framework, "format": version.format, "created": version.created,
            "tags": dict(version.tags), "description": version.description, "user": version.user,
            "host": version.host, "aliases": list(version.aliases)}


def models_list(store: Backend) -> dict[str, Any]:
    """Every registered model: its latest version, its aliases and how many versions it has."""
    from .._registry import list_models

    out = []
    for model in list_models(store=store):
        latest = model.latest
        out.append({"name": model.name, "versions": len(model.versions), "latest": _version_row(latest),
                    "aliases": dict(model.aliases),
                    "last_move": model.history[-1].time if model.history else None})
    return {"models": out}


def model_detail(store: Backend, name: str) -> dict[str, Any]:
    """One registered model: every version (newest first, each with its run's name and status),
    its aliases, and the whole alias history."""
    from .._query import runs as query_runs
    from .._registry import get_model

    model = get_model(name, store=store)
    ids = sorted({v.run_id for v in model.versions if not v.run_deleted})
    names: dict[str, tuple[Any, Any]] = {}
    for start in range(0, len(ids), 100):  # the query language bounds a where's size
        chunk = ids[start:start + 100]
        frame = query_runs(where="id in (" + ", ".join(_quote(i) for i in chunk) + ")", store=store)
        names.update({r["id"]: (r["name"], r["status"]) for r in frame[["id", "name", "status"]].to_dict("records")})
    versions = []
    for v in reversed(model.versions):
        row = _version_row(v)
        row["run_name"], row["run_status"] = names.get(v.run_id, (None, None))
        versions.append(row)
    history = [{"seq": m.seq, "alias": m.alias, "from": m.from_version, "to": m.to_version, "action": m.action,
                "reason": m.reason, "user": m.user, "host": m.host, "time": m.time} for m in reversed(model.history)]
    return {"name": model.name, "aliases": dict(model.aliases), "versions": versions, "history": history}
