"""The ``autotrack`` command line: list, show, compare and delete runs (plus the commands other
modules register)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from ._errors import AutotrackError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from ._query import RunRecord

STATUS_STYLE = {
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "killed": "yellow",
    "crashed": "bold magenta",
}


def _console() -> Console:
    from rich.console import Console

    console = Console(soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(soft_wrap=False, width=200)  # piped: keep each run on one line
    return console


def _e(value: Any) -> str:
    """Recorded text as it is, never as rich markup (``[red]x[/red]``, ``[link=file://...]``)."""
    from rich.markup import escape

    return escape(str(value))


def _fmt(value: Any) -> str:
    """A recorded value as display text, markup escaped."""
    return _e(_plain(value))


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3) and not math.isinf(value):
            return f"{value:.4g}"
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _cell(value: Any) -> str:
    """A table cell's text (not yet markup escaped): empty for a value a run lacks."""
    try:
        import pandas as pd

        if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
            return ""
    except (TypeError, ValueError):
        pass
    return _plain(value)


def _duration(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _store_option(fn: Any) -> Any:
    return click.option(
        "--store",
        "store_path",
        envvar=["AUTOTRACK_STORE", "AUTOTRACK_DIR"],
        default="autotrack-runs",
        show_default=True,
        help="Store folder or postgresql:// URL (also $AUTOTRACK_STORE, $AUTOTRACK_DIR).",
    )(fn)


def _open_store(store_path: str) -> Any:
    from ._run import store_for

    return store_for(store_path)


class _Group(click.Group):
    """The one error handler: autotrack's own errors (a bad argument, a damaged or unreachable
    store) print as one clear line and exit 1, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AutotrackError as exc:
            raise click.ClickException(str(exc)) from exc


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="autotrack")
def cli() -> None:
    """autotrack: list, compare, diff, plot and reproduce recorded training runs."""


@cli.command("runs")
@_store_option
@click.option("--experiment", "-e", multiple=True, help="Only runs of this experiment (repeatable).")
@click.option("--status", "-s", multiple=True, help="Only runs with this status (repeatable).")
@click.option("--where", "-w", help="Filter, e.g. \"params.lr < 0.01 and metrics.val/rmse < 0.5\".")
@click.option("--sort", "order_by", help="Order, e.g. \"metrics.val/rmse DESC\" (default: newest first).")
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="At most this many rows (0: all).")
@click.option("--columns", "-c", help="Comma-separated extra columns to show, e.g. params.lr,metrics.val/loss.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
def runs_command(store_path: str, experiment: Sequence[str], status: Sequence[str], where: str | None,
                 order_by: str | None, limit: int, columns: str | None, as_json: bool) -> None:
    """List runs, newest first."""
    from ._query import count_runs, runs

    if limit < 0:
        raise click.BadParameter(f"{limit} is negative; pass a number of rows, or 0 for all", param_hint="--limit")
    store = _open_store(store_path)
    filters = {"experiment": list(experiment) or None, "status": list(status) or None, "where": where}
    try:
        frame = runs(**filters, order_by=order_by, limit=limit or None, store=store)  # paged in the store
        total = count_runs(**filters, store=store) if limit and len(frame) == limit else len(frame)
    except AutotrackError as exc:
        _fail(exc)
        return
    frame.attrs["total"] = total
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", default_handler=str))
        return
    _print_runs_table(frame, columns)


def _varying_columns(frame: pd.DataFrame, prefix: str, limit: int) -> list[str]:
    """The columns most worth a glance (:func:`autotrack._sections.table_columns`)."""
    from ._sections import table_columns

    values = {c[len(prefix):]: [None if missing else v for v, missing in zip(frame[c].tolist(), frame[c].isna())]
              for c in frame.columns if c.startswith(prefix)}  # NaN, pd.NA: not set
    return [prefix + k for k in table_columns(values, metrics=prefix == "metrics.", limit=limit)]


def _label(column: str) -> str:
    return column.split(".", 1)[1] if "." in column else column


def _print_runs_table(frame: pd.DataFrame, columns: str | None) -> None:
    from rich.table import Table

    console = _console()
    if frame.empty:
        console.print("No runs. Record one with autotrack.start_run(), a callback, or autotrack.autolog().")
        return
    extra = [c.strip() for c in columns.split(",")] if columns else (
        _varying_columns(frame, "params.", 4) + _varying_columns(frame, "metrics.", 4)
    )
    missing = [c for c in extra if c not in frame.columns]
    if missing:
        raise click.ClickException(f"no such column: {', '.join(missing)}. Use `autotrack runs --json` to see all.")
    cells = {c: [_cell(v) for v in frame[c]] for c in extra}
    widths = {c: max([len(v) for v in cells[c]] + [min(len(_label(c)), 12), 4]) for c in extra}
    # A column is as wide as its widest value (a number cut to "0.0…" reads as another number).
    # Names and experiments give up width first (down to 12 / 10); chosen columns that still do
    # not fit the terminal are left out and named below the table.
    full_name = min(28, max(8, *map(len, frame["name"].astype(str))))
    full_exp = min(20, max(10, *map(len, frame["experiment"].astype(str))))  # 10: its header
    for name_w, exp_w in ((full_name, full_exp), (min(full_name, 12), 10)):
        room = console.width - (8 + name_w + exp_w + 8 + 16 + 8) - 2 * 5  # 2 spaces between columns
        shown, left_out = [], []
        for column in extra:
            if columns or widths[column] + 2 <= room:  # asked for by name: always shown
                room -= widths[column] + 2
                shown.append(column)
            else:
                left_out.append(column)
        if not left_out:
            break
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    table.add_column("id", style="dim", no_wrap=True, min_width=8)
    table.add_column("name", no_wrap=True, overflow="ellipsis", min_width=min(8, name_w), max_width=name_w)
    table.add_column("experiment", no_wrap=True, overflow="ellipsis", min_width=exp_w, max_width=exp_w)
    table.add_column("status", no_wrap=True, min_width=8)
    table.add_column("started", no_wrap=True, min_width=16)
    table.add_column("duration", justify="right", no_wrap=True, min_width=8)
    for column in shown:
        table.add_column(_label(column), justify="right", no_wrap=True, overflow="ellipsis",
                         min_width=widths[column], max_width=max(widths[column], 20))
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row))
        status = values["status"]
        started = values["start"].tz_convert(None).strftime("%Y-%m-%d %H:%M") if values["start"] is not None else ""
        table.add_row(
            _e(values["id"][:8]),
            _e(values["name"]),
            _e(values["experiment"]),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            started,
            _duration(values["duration"]),
            *[_e(cells[c][i]) for c in shown],
        )
    console.print(table)
    if left_out:
        console.print(f"[dim]not shown for the terminal's width: {_e(', '.join(left_out))} (choose with --columns)[/]")
    total = frame.attrs.get("total")
    if isinstance(total, int) and total > len(frame):
        console.print(f"[dim]showing {len(frame)} of {total} runs (use --limit N, or --limit 0 for all)[/]")
    else:
        console.print(f"[dim]{len(frame)} run(s)[/]")


@cli.command("show")
@_store_option
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def show_command(store_path: str, run_id: str, as_json: bool) -> None:
    """Show one run (an id, a unique prefix, a name, or `latest`): params, last metrics, captured
    sections and artifacts."""
    try:
        rec = _resolve(run_id, _open_store(store_path))
    except AutotrackError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, default=str, allow_nan=True))
        return
    _print_run(rec)


def _resolve(run_id: str, store: Any) -> RunRecord:
    from ._errors import RunNotFoundError
    from ._query import get_run, runs

    if run_id == "latest":
        frame = runs(limit=1, store=store)
        if frame.empty:
            raise RunNotFoundError(run_id, [], f"the store at {store.location} has no runs; no run matches")
        run_id = frame["id"][0]
    return get_run(run_id, store=store)


def _print_run(rec: RunRecord) -> None:
    from rich.panel import Panel
    from rich.table import Table

    console = _console()
    started = datetime.fromtimestamp(rec.start_time).strftime("%Y-%m-%d %H:%M:%S")
    header = (
        f"[bold]{_e(rec.name)}[/]  [dim]{_e(rec.id)}[/]\n"
        f"experiment [bold]{_e(rec.experiment)}[/]   status [{STATUS_STYLE.get(rec.status, '')}]{rec.status}[/]   "
        f"started {started}   duration {_duration(rec.duration) or '-'}"
    )
    if rec.parent_id:
        header += f"\nparent {_e(rec.parent_id)}"
    if rec.error:
        header += f"\n[red]{_e(rec.error.get('type'))}: {_e(rec.error.get('message'))}[/]"
    if rec.degraded:
        header += f"\n[yellow]degraded: {_e(rec.degraded)}[/]"
    console.print(Panel(header, expand=False))
    if rec.params:
        console.print(_kv_table("params", rec.params))
    stats = rec.metric_stats()
    if stats:
        table = Table(title="metrics", title_justify="left", box=None, header_style="bold")
        for col in ("key", "last", "min", "max", "points", "last step"):
            table.add_column(col, justify="left" if col == "key" else "right", overflow="fold")
        from ._sections import metric_order

        for key, s in sorted(stats.items(), key=lambda item: metric_order(item[0])):
            table.add_row(_e(key), _fmt(s["last"]), _fmt(s["min"]), _fmt(s["max"]), str(s["count"]), _fmt(s["last_step"]))
        console.print(table)
    if rec.tags:
        console.print(_kv_table("tags", rec.tags))
    from ._sections import SECTION_NAMES, machine_summary

    if "hardware" in rec.sections or "environment" in rec.sections:
        console.print(_kv_table("machine", machine_summary(rec.info("hardware"), rec.info("environment"))))
    order = {name: i for i, name in enumerate(SECTION_NAMES)}
    for section in sorted(rec.sections, key=lambda name: (order.get(name, len(order)), name)):
        data = rec.info(section)
        console.print(_kv_table(_e(section), _flatten_for_display(data), limit=40))
    if rec.artifacts:
        table = Table(title="artifacts", title_justify="left", box=None, header_style="bold")
        for col in ("name", "kind", "size", "step", "sha256", "stored"):
            table.add_column(col, overflow="fold")
        for a in rec.artifacts:
            name = f"[strike]{_e(a.name)}[/]" if a.deleted else _e(a.name)
            if a.metadata.get("best"):
                name += " [green](best)[/]"
            table.add_row(name, _e(a.kind), _size(a.size), _fmt(a.step), (a.sha256 or "")[:12], "copy" if a.stored else "reference")
        console.print(table)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _flatten_for_display(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and len(value) <= 50:
            out.update(_flatten_for_display(value, f"{prefix}{key}."))
        elif isinstance(value, (dict, list)) and len(json.dumps(value, default=str)) > 200:
            out[f"{prefix}{key}"] = f"<{type(value).__name__} of {len(value)} items>"
        else:
            out[f"{prefix}{key}"] = value
    return out


def _kv_table(title: str, data: dict[str, Any], limit: int | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, show_header=False)
    table.add_column("key", style="bold", overflow="fold", max_width=48)
    table.add_column("value", overflow="fold")
    items = list(data.items())
    for key, value in items[:limit] if limit else items:
        table.add_row(_e(key), _fmt(value))
    if limit and len(items) > limit:
        table.add_row("...", f"{len(items) - limit} more (autotrack show --json)")
    return table


@cli.command("compare")
@_store_option
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--all", "show_all", is_flag=True, help="Also show rows that are equal across runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare_command(store_path: str, run_ids: Sequence[str], show_all: bool, as_json: bool) -> None:
    """Compare runs side by side: params, and final and best metrics. Differing rows are highlighted."""
    from rich.table import Table

    store = _open_store(store_path)
    try:
        records = [_resolve(r, store) for r in run_ids]
    except AutotrackError as exc:
        _fail(exc)
        return
    rows = compare_rows(records)
    if as_json:
        click.echo(json.dumps({"runs": [r.id for r in records], "rows": rows}, default=str, allow_nan=True))
        return
    table = Table(box=None, header_style="bold")
    table.add_column("", overflow="fold", max_width=40)
    for rec in records:
        table.add_column(f"{_e(rec.name)}\n[dim]{_e(rec.id[:8])}[/]", justify="right", overflow="fold", max_width=24)
    shown = 0
    for row in rows:
        if not row["differs"] and not show_all:
            continue
        style = "bold yellow" if row["differs"] else None
        table.add_row(_e(row["label"]), *[_fmt(v) for v in row["values"]], style=style)
        shown += 1
    _console().print(table)
    hidden = len(rows) - shown
    if hidden:
        _console().print(f"[dim]{hidden} equal row(s) hidden; --all shows them[/]")


def compare_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Rows of a comparison: status, every param, and each metric's last and best value."""
    rows: list[dict[str, Any]] = []

    def add(label: str, values: list[Any]) -> None:
        rows.append({"label": label, "values": values, "differs": len({json.dumps(v, default=str) for v in values}) > 1})

    add("status", [r.status for r in records])
    add("duration (s)", [None if r.duration is None else round(r.duration, 1) for r in records])
    keys = sorted(set().union(*(r.params for r in records)))
    for key in keys:
        add(f"params.{key}", [r.params.get(key) for r in records])
    stats = [r.metric_stats() for r in records]
    for key in sorted(set().union(*stats)):
        add(f"metrics.{key} (last)", [s.get(key, {}).get("last") for s in stats])
        better_low = lower_is_better(key)
        add(f"metrics.{key} ({'min' if better_low else 'max'})",
            [s.get(key, {}).get("min" if better_low else "max") for s in stats])
    return rows


def lower_is_better(key: str) -> bool:
    """Whether smaller values of a metric are better, by its name (loss, error, rmse, ...)."""
    from ._diff import metric_goal

    return metric_goal(key) == "min"


@cli.command("rm")
@_store_option
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also delete runs registered model versions refer to (the versions are kept).")
def rm_command(store_path: str, run_ids: Sequence[str], yes: bool, force: bool) -> None:
    """Delete runs from the store."""
    from ._query import delete_run, get_run

    store = _open_store(store_path)
    try:
        records = [get_run(r, store=store) for r in run_ids]
    except AutotrackError as exc:
        _fail(exc)
        return
    names = ", ".join(f"{r.name} ({r.id[:8]})" for r in records)
    if not yes and not click.confirm(f"Delete {names}?", default=False):
        raise click.Abort()
    for rec in records:
        delete_run(rec.id, store=store, force=force)
    click.echo(f"deleted {names}")


@cli.command("gc")
@_store_option
@click.option("--grace", type=float, default=60.0, show_default=True,
              help="Keep blobs touched in the last SECONDS (their records may still be queued by a live run).")
def gc_command(store_path: str, grace: float) -> None:
    """Remove artifact bytes that no run refers to any more."""
    from ._query import gc

    freed = gc(store=_open_store(store_path), grace=grace)
    click.echo(f"freed {freed['blobs']} blob(s), {_size(freed['bytes'])}")


def _register_optional_commands() -> None:
    """Commands that live in other modules, added when those modules are present."""
    import importlib

    for module, attr in (("._capture.doctor", "doctor_command"), ("._cli_extra", "commands"), ("._autolog_cli", "commands"),
                         ("._cli_sync", "commands"), ("._cli_models", "models_command")):
        try:
            mod = importlib.import_module(module, __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("autotrack"):
                continue
            raise
        found = getattr(mod, attr)
        for command in found if isinstance(found, (list, tuple)) else [found]:
            cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    _register_optional_commands()
    cli.main(args=list(argv) if argv is not None else None, prog_name="autotrack")


if __name__ == "__main__":
    main(sys.argv[1:])
