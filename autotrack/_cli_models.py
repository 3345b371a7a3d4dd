"""CLI ``autotrack models``: list registered models, show one, move an alias, roll it back, diff two
versions. Reads and writes only through the registry API (``autotrack._registry``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click


def _with_store(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--store`` and hand the command the chosen store; autotrack's errors become one line."""

    @click.option("--store", "store_path", envvar=["AUTOTRACK_STORE", "AUTOTRACK_DIR"], default="autotrack-runs",
                  show_default=True, help="Store folder or postgresql:// URL (also $AUTOTRACK_STORE, $AUTOTRACK_DIR).")
    @functools.wraps(fn)
    def wrapper(*args: Any, store_path: str, **kwargs: Any) -> Any:
        from ._errors import AutotrackError
        from ._run import store_for

        try:
            return fn(*args, store=store_for(store_path), **kwargs)
        except AutotrackError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _e(value: Any) -> str:
    from rich.markup import escape

    return escape("" if value is None else str(value))


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _console() -> Any:
    from ._cli import _console as console

    return console()


def _size(n: int | None) -> str:
    from ._cli import _size as size

    return size(n)


@click.group("models", invoke_without_command=True)
@click.pass_context
@_with_store
def models_command(ctx: click.Context, store: Any) -> None:
    """Registered models: versions, aliases and their history. Alone: list every model."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from ._registry import list_models

    models = list_models(store=store)
    if not models:
        click.echo(f"no registered models in the store at {store.location}; register one with autotrack.register_model()")
        return
    table = Table(box=None)
    for col in ("model", "latest", "versions", "aliases", "framework", "registered"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(_e(m.name), str(m.latest.version), str(len(m.versions)), _e(aliases), _e(m.latest.framework),
                      _when(m.latest.created))
    _console().print(table)


@models_command.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@_with_store
def show_command(name: str, as_json: bool, store: Any) -> None:
    """Versions, aliases and the alias history of model NAME."""
    from rich.table import Table

    from ._registry import get_model

    m = get_model(name, store=store)
    if as_json:
        out = {
            "name": m.name, "aliases": m.aliases,
            "versions": [{k: v for k, v in vars(ver).items() if not k.startswith("_")} for ver in m.versions],
            "history": [vars(h) for h in m.history],
        }
        click.echo(json.dumps(out, indent=2, default=repr))
        return
    console = _console()
    versions = Table(title=f"model {_e(m.name)}", box=None, title_justify="left")
    for col in ("version", "aliases", "run", "artifact", "framework", "size", "sha256", "registered", "by"):
        versions.add_column(col)
    for v in m.versions:
        run = v.run_id[:8] + (" (deleted)" if v.run_deleted else "")
        versions.add_row(str(v.version), _e(", ".join(v.aliases)), _e(run), _e(v.artifact), _e(v.framework),
                         _size(v.size), v.sha256[:12], _when(v.created), _e(f"{v.user}@{v.host}"))
    console.print(versions)
    history = Table(title="alias history", box=None, title_justify="left")
    for col in ("when", "alias", "from", "to", "action", "by", "reason"):
        history.add_column(col)
    for h in m.history:
        history.add_row(_when(h.time), _e(h.alias), "" if h.from_version is None else str(h.from_version),
                        str(h.to_version), _e(h.action), _e(f"{h.user}@{h.host}"), _e(h.reason))
    if m.history:
        console.print(history)
    else:
        console.print("no alias has been set")


@models_command.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.option("--reason", default=None, help="Why (kept in the alias history).")
@_with_store
def alias_command(name: str, alias: str, version: int, reason: str | None, store: Any) -> None:
    """Point ALIAS of model NAME at VERSION (recorded in the alias history)."""
    from ._registry import set_alias

    move = set_alias(name, alias, version, reason=reason, store=store)
    if move is None:
        click.echo(f"{name}@{alias} already points at version {version}")
    else:
        came = "unset" if move.from_version is None else f"version {move.from_version}"
        click.echo(f"{name}@{alias}: {came} -> version {move.to_version}")


@models_command.command("rollback")
@click.argument("name")
@click.argument("alias")
@click.option("--to", "to", type=int, default=None, help="Move to this version (default: the one held before).")
@click.option("--reason", default=None, help="Why (kept in the alias history).")
@_with_store
def rollback_command(name: str, alias: str, to: int | None, reason: str | None, store: Any) -> None:
    """Move ALIAS of model NAME back to the version it held before (recorded as a move)."""
    from ._registry import rollback

    move = rollback(name, alias, to=to, reason=reason, store=store)
    click.echo(f"{name}@{alias}: version {move.from_version} -> version {move.to_version} (rollback)")


@models_command.command("diff")
@click.argument("name")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@_with_store
def diff_command(name: str, version_a: str, version_b: str, as_json: bool, store: Any) -> None:
    """What differs between two versions (numbers or aliases) of model NAME: `autotrack diff` of
    their runs, plus the two model files' hashes and sizes."""
    from ._diff import diff_runs, render_diff
    from ._registry import get_model

    model = get_model(name, store=store)
    a, b = model.version(version_a), model.version(version_b)
    files = {
        "a": {"version": a.version, "artifact": a.artifact, "sha256": a.sha256, "size": a.size},
        "b": {"version": b.version, "artifact": b.artifact, "sha256": b.sha256, "size": b.size},
        "same_bytes": a.sha256 == b.sha256,
    }
    result = diff_runs(a.run(), b.run())
    if as_json:
        from ._report import _sanitize

        click.echo(json.dumps({"model": name, "files": files, "runs": _sanitize(result)}, indent=2, default=repr,
                              allow_nan=False))
        return
    render_diff(result)
    console = _console()
    console.print(f"\n[bold]model files[/bold] of {_e(name)}")
    for side, v in (("a", a), ("b", b)):
        console.print(f"  {side}: version {v.version}  {_e(v.artifact)}  {_size(v.size)}  sha256 {v.sha256}")
    console.print("  the same bytes" if files["same_bytes"] else "  different bytes")
