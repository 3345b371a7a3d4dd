"""CLI commands ``diff``, ``reproduce``, ``report`` and ``ui``; the main group adds ``commands``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

_store_option = click.option(
    "--store", "store", type=str, default=None,
    help="Store folder or postgresql:// URL (default: $AUTOTRACK_STORE, $AUTOTRACK_DIR or ./autotrack-runs).",
)


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with the chosen store; autotrack's own errors become one clean CLI error line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, store: str | None = None, **kwargs: Any) -> Any:
        from ._errors import AutotrackError

        if store is not None:
            import autotrack

            autotrack.set_store(store)
        try:
            return fn(*args, **kwargs)
        except AutotrackError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@_store_option
@_friendly
def diff_command(run_a: str, run_b: str, as_json: bool) -> None:
    """Explain why run B differs from run A: params, metrics, code, packages, hardware,
    environment, seeds, data. Unchanged things are not listed."""
    from ._diff import diff_runs, render_diff

    result = diff_runs(run_a, run_b)
    if as_json:
        from ._report import _sanitize

        click.echo(json.dumps(_sanitize(result), indent=2, default=repr, allow_nan=False))  # NaN -> null: strict JSON
    else:
        render_diff(result)


@click.command("reproduce")
@click.argument("run")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the bundle (default: ./reproduce-<run id>).")
@click.option("--run", "rerun", is_flag=True,
              help="Also build the bundle's environment in DIR, rerun RUN under autotrack and compare the two runs.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-6, show_default=True,
              help="With --run: metrics this close (relative and absolute) count as reproduced within tolerance.")
@_store_option
@_friendly
def reproduce_command(run: str, directory: Path | None, rerun: bool, tolerance: float) -> None:
    """Write a bundle that recreates RUN: pinned requirements, commit and patch, command, env vars,
    seeds, reproduce.sh, and a README that says what cannot be reproduced. With --run, also rerun
    it (the rerun is a recorded run tagged reproduces=RUN) and print the verdict."""
    from ._query import get_run
    from ._reproduce import reproduce

    record = get_run(run)
    target = directory or Path(f"reproduce-{record.id[:8]}")
    if rerun:
        from ._verify import render_verdict, verify

        result = verify(record, target, tolerance=tolerance)
        click.echo(f"Bundle for run {record.id[:8]} ({record.name}) written to {result['bundle']}; rerun recorded as "
                   f"{result['rerun'][:8]}.")
        click.echo(render_verdict(result))
        click.echo(f"Details: autotrack diff {record.id[:8]} {result['rerun'][:8]}")
        return
    out = reproduce(record, target)
    click.echo(f"Bundle for run {record.id[:8]} ({record.name}) written to {out}")
    readme = (out / "README.md").read_text()
    limits = readme.split("## What cannot be reproduced", 1)[-1].strip()
    click.echo("What cannot be reproduced:\n" + limits)
    click.echo(f"Run it with: {out / 'reproduce.sh'}")


@click.command("report")
@click.argument("runs", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write.")
@click.option("--experiment", "-e", multiple=True, help="Add every run of this experiment.")
@click.option("--metric", default=None, help="Metric for the parallel-coordinates plot (default: val/loss or train/loss).")
@click.option("--points", type=click.IntRange(10, 100_000), default=None,
              help="Points per curve on screen (default: 2000, fewer with many runs).")
@click.option("--title", default="autotrack report", show_default=True)
@_store_option
@_friendly
def report_command(runs: tuple[str, ...], output: Path, experiment: tuple[str, ...], metric: str | None,
                   points: int | None, title: str) -> None:
    """Write one self-contained HTML report (works offline) comparing RUNS."""
    from ._report import write_report

    ids = list(runs)
    if experiment:
        import autotrack

        ids += [i for i in autotrack.runs(experiment=list(experiment))["id"] if i not in ids]
    if not ids:
        raise click.UsageError("name at least one run (or --experiment)")
    path = write_report(ids, output, metric=metric, points=points, title=title)
    click.echo(f"Report of {len(ids)} run(s) written to {path}")


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--allow-remote", is_flag=True,
              help="Allow binding an address other than loopback (a token is then always required).")
@click.option("--allowed-host", multiple=True, help="Extra Host header value to accept (a name this server is reached by).")
@click.option("--token", is_flag=False, flag_value="", default=None, metavar="[TOKEN]",
              help="Require a token on every request; without a value one is generated. Default: "
                   "AUTOTRACK_UI_TOKEN. Open the printed URL once to log the browser in.")
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a browser.")
@_store_option
@_friendly
def ui_command(host: str, port: int, allow_remote: bool, allowed_host: tuple[str, ...], token: str | None,
               open_browser: bool) -> None:
    """Run the local web UI: runs table, run pages, comparisons, live refresh."""
    from ._ui import serve
    from ._ui._server import new_token

    if token == "":
        token = new_token()
    serve(host, port, allow_remote=allow_remote, open_browser=open_browser, allowed_hosts=set(allowed_host),
          token=token)


commands: list[click.Command] = [diff_command, reproduce_command, report_command, ui_command]
