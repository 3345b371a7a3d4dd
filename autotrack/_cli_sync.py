"""CLI command ``sync``: copy the local store into the team store (see :mod:`autotrack.store.sync`)."""

from __future__ import annotations

from collections.abc import Sequence

import click


@click.command("sync")
@click.option("--from", "source", default=None,
              help="Store to copy from (default: $AUTOTRACK_DIR or ./autotrack-runs).")
@click.option("--to", "target", envvar="AUTOTRACK_SYNC_TO", required=True,
              help="Store to copy into, e.g. postgresql://user@host:5432/db (also $AUTOTRACK_SYNC_TO).")
@click.option("--run", "run_ids", multiple=True, help="Only this run (full id; repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def sync_command(source: str | None, target: str, run_ids: Sequence[str], quiet: bool) -> None:
    """Copy runs, points, sections and artifacts from a local store into the team store.

    Safe to repeat (nothing is copied twice), to interrupt (the next sync completes it) and to run
    while training is going on (each sync adds the points logged since the last one). Run ids,
    statuses and times are kept.
    """
    import os

    from ._errors import AutotrackError
    from .store.sync import sync

    source = source or os.environ.get("AUTOTRACK_DIR") or "autotrack-runs"
    try:
        report = sync(source, target, run_ids=list(run_ids) or None)
    except AutotrackError as exc:
        raise click.ClickException(str(exc)) from exc
    if not quiet:
        from ._run import store_for

        click.echo(f"synced {store_for(source).location} -> {store_for(target).location}: {report}")


commands = [sync_command]
