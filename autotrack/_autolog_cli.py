"""``autotrack run``: run an unmodified script with autolog on (the zero-code-change way)."""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

import click

#: True once ``autotrack run`` started the program (start capture records it as the ``launcher``).
launched = False


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--experiment", "-e", help="Experiment for the runs this script records.")
@click.option("--name", "-n", "run_name", help="Name of the run the script records (the next top-level ones: NAME-2, ...).")
@click.option("-m", "module", is_flag=True, help="Run TARGET as a module, like `python -m`.")
@click.option("--no-system-metrics", is_flag=True, help="Do not sample machine metrics.")
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(experiment: str | None, run_name: str | None, module: bool, no_system_metrics: bool, target: str, args: Sequence[str]) -> None:
    """Run TARGET (a script, or a module with -m) with autotrack.autolog() on.

    \b
      autotrack run train.py --lr 0.01
      autotrack run --name baseline train.py
      autotrack run -m mypackage.train --epochs 3
    """
    global launched
    from ._autolog import autolog

    if not module and not os.path.isfile(target):
        raise click.BadParameter(f"no such script {target!r}; pass a Python file, or -m for a module", param_hint="TARGET")
    sys.argv = [target, *args]
    # What `python script.py` / `python -m module` put first on sys.path: the script's folder, or
    # the current directory (a console script has neither there).
    sys.path.insert(0, os.getcwd() if module else os.path.dirname(os.path.abspath(target)))
    launched = True
    autolog(experiment=experiment, run_name=run_name, system_metrics=not no_system_metrics)
    from ._lifecycle import note_exit_code

    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:  # `sys.exit(3)` and `raise SystemExit(3)` alike: the runs end `failed`
        note_exit_code(exc.code)
        raise
    finally:
        _say_if_nothing_was_recorded()


def _say_if_nothing_was_recorded() -> None:
    """One line on stderr when the script trained nothing autolog knows (a loop that updates its
    weights by hand, with no ``torch.optim`` optimizer and no framework's fit): silence would read
    as "recorded"."""
    from . import _run

    if _run.runs_started == 0 and os.environ.get("AUTOTRACK_DISABLE") != "1":
        print("autotrack: no training was detected, so no run was recorded (autolog records torch.optim "
              "optimizer steps and the fits of Lightning, scikit-learn, XGBoost, LightGBM, Keras and "
              "Transformers). For other loops, log with `with autotrack.start_run() as run: run.log_metric(...)`.",
              file=sys.stderr)


commands = [run_command]
