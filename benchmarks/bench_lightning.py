"""Overhead of AutotrackCallback on a small Lightning training on CPU, next to its peers.

    python benchmarks/bench_lightning.py              # 2000 steps x 5 repetitions (~2-3 minutes here)
    python benchmarks/bench_lightning.py --quick      # 400 steps x 6 repetitions (~40 s here)

Variants, run interleaved (the order shuffled in each repetition) in one process:

* ``bare``       -- no logger, no callback;
* ``autotrack``  -- ``AutotrackCallback()`` with everything on (grad norms, per-layer norms, lr,
                    loss, self.log metrics, checkpoint tracking, and the start-of-run capture and
                    system-metrics sampler when ``autotrack._capture`` is present);
* ``csv``        -- ``CSVLogger`` with ``log_every_n_steps=1``;
* ``mlflow``     -- ``mlflow.pytorch.autolog(log_every_n_step=1)`` (only if mlflow is importable;
                    ``log_models=False`` unless ``--mlflow-log-models``);
* ``autotrack-nocapture`` -- (only when asked for) the callback with ``AUTOTRACK_CAPTURE=0`` and
                    ``AUTOTRACK_SYSTEM_METRICS=0``: its own cost, without start-of-run capture and the
                    system-metrics sampler thread;
* ``autotrack-nonorm`` -- (only when asked for with ``--variants``) the callback without gradient norms;
* ``noop-callback`` -- (only when asked for) an empty ``Callback``: what Lightning's hook dispatch to
                    one more callback costs, whatever the callback does.

Then (unless ``--no-paired``) the callback's own cost measured within single fits: it is switched
on and off in alternating 50-step blocks, and the ratio of the median step time of each "on" block to
the "off" block just before it is taken (adjacent blocks share the machine's load, which the
fit-to-fit comparison does not).

Every variant trains the same 64-256-256-10 MLP on the same synthetic data, and its
``training_step`` calls ``self.log("train_loss", loss)``. Reported per variant: the steady-state
time per step (median of the per-step times after ``--warmup`` steps, with
``torch.set_num_threads(1)``), its ratio to ``bare`` (median over repetitions of the ratio within
each repetition, so drift of a noisy machine cancels), and ``fit()`` as a whole.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

try:
    import lightning.pytorch as L
except ImportError:  # pragma: no cover
    import pytorch_lightning as L  # type: ignore[no-redef]

import autotrack
from autotrack.integrations.lightning import AutotrackCallback

try:  # start-of-run capture (hardware, environment, system metrics) when the package has it
    import autotrack._capture
except ImportError:
    pass


class MLP(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 500, 0.5), "interval": "step"}}


class StepTimer(L.Callback):
    """Wall-clock time and process CPU time (all threads) between consecutive training batch ends."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())
        self.cpu.append(time.process_time())


class Toggler(L.Callback):
    """Switches an AutotrackCallback on and off every ``block`` steps within one fit and keeps the
    per-step times of each state: adjacent blocks see the same machine load, so the paired
    difference isolates the callback's own cost (its hooks still get called when off, and return)."""

    def __init__(self, target: AutotrackCallback, block: int = 50) -> None:
        self.target = target
        self.block = block
        self.last: float | None = None
        self.blocks: list[tuple[bool, list[float]]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if batch_idx % self.block == 0:
            on = (batch_idx // self.block) % 2 == 1
            self.target._on = on
            self.blocks.append((on, []))
        elif self.last is not None:
            self.blocks[-1][1].append(now - self.last)
        self.last = now


def paired_overhead(loader, workdir: Path, block: int) -> tuple[float, float]:
    """Median over adjacent (off, on) block pairs of median(on) / median(off), and the step time."""
    cb = AutotrackCallback()
    toggler = Toggler(cb, block)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, callbacks=[cb, toggler],
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(workdir / "paired"), num_sanity_val_steps=0)
    trainer.fit(MLP(), loader)
    blocks = [(on, statistics.median(t)) for on, t in toggler.blocks[2:] if len(t) > block // 2]
    ratios = [b_on / b_off for (on0, b_off), (on1, b_on) in itertools.pairwise(blocks) if not on0 and on1]
    if not ratios:
        return float("nan"), float("nan")
    return statistics.median(ratios), statistics.median(m for on, m in blocks if not on)


def make_loader(steps: int, batch_size: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * batch_size, 64, generator=g)
    y = torch.randint(0, 10, (steps * batch_size,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


LOG_MODELS = False


def run_variant(name: str, loader, workdir: Path, warmup: int) -> tuple[float, float]:
    torch.manual_seed(0)
    timer = StepTimer()
    callbacks: list = [timer]
    logger: object = False
    kwargs = {}
    if name == "autotrack":
        callbacks.append(AutotrackCallback())
    elif name == "autotrack-nocapture":  # the callback alone: no start-of-run capture, no system sampler
        callbacks.append(AutotrackCallback())
        os.environ.update(AUTOTRACK_CAPTURE="0", AUTOTRACK_SYSTEM_METRICS="0")
    elif name == "autotrack-nonorm":  # for splitting the cost: no gradient norms
        callbacks.append(AutotrackCallback(log_grad_norm=False))
    elif name == "noop-callback":  # Lightning's own cost of dispatching hooks to one more callback
        callbacks.append(L.Callback())
    elif name == "csv":
        logger = L.loggers.CSVLogger(str(workdir / "csv"))
        kwargs["log_every_n_steps"] = 1
    elif name == "mlflow":
        import mlflow.pytorch

        mlflow.pytorch.autolog(log_every_n_step=1, log_models=LOG_MODELS, silent=True)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=True,
        default_root_dir=str(workdir / name), num_sanity_val_steps=0, **kwargs,
    )
    t0 = time.perf_counter()
    try:
        trainer.fit(MLP(), loader)
    finally:
        if name == "autotrack-nocapture":
            os.environ.pop("AUTOTRACK_CAPTURE", None)
            os.environ.pop("AUTOTRACK_SYSTEM_METRICS", None)
        if name == "mlflow":
            import mlflow
            import mlflow.pytorch

            mlflow.pytorch.autolog(disable=True)
            if mlflow.active_run() is not None:
                mlflow.end_run()
    fit_time = time.perf_counter() - t0
    per_step = [b - a for a, b in itertools.pairwise(timer.times[warmup:])]
    cpu = timer.cpu[warmup:]
    cpu_per_step = (cpu[-1] - cpu[0]) / (len(cpu) - 1)  # process_time ticks too coarsely for one step
    return statistics.median(per_step), cpu_per_step, fit_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per fit (default 2000)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--warmup", type=int, default=100, help="steps left out of the steady state")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="400 steps x 6 repetitions (~1-2 minutes)")
    parser.add_argument("--variants", default="bare,autotrack,csv,mlflow")
    parser.add_argument("--mlflow-log-models", action="store_true",
                        help="keep mlflow's default model logging (adds seconds to each fit, not to steps)")
    parser.add_argument("--no-paired", dest="paired", action="store_false",
                        help="skip the within-fit measurement (callback on/off in alternating 50-step blocks)")
    args = parser.parse_args()
    global LOG_MODELS
    LOG_MODELS = args.mlflow_log_models
    if args.quick:
        args.steps, args.reps = 400, 6
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    variants = [v for v in args.variants.split(",") if v]
    if "mlflow" in variants:
        try:
            import mlflow
            import mlflow.pytorch
        except ImportError:
            print("mlflow is not importable: its variant is skipped")
            variants.remove("mlflow")

    work = Path(tempfile.mkdtemp(prefix="bench-lightning-"))
    autotrack.set_store(work / "autotrack-store")
    if "mlflow" in variants:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    os.chdir(work)
    loader = make_loader(args.steps, args.batch_size)
    steps: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    fits: dict[str, list[float]] = {v: [] for v in variants}
    for name in variants:  # imports and first-call costs, outside the measurement
        run_variant(name, make_loader(30, args.batch_size), work / "warm", 5)
    rng = random.Random(0)
    for rep in range(args.reps):
        order = variants[:]
        rng.shuffle(order)
        for name in order:
            per_step, cpu_step, fit_time = run_variant(name, loader, work / f"rep{rep}", args.warmup)
            steps[name].append(per_step)
            cpus[name].append(cpu_step)
            fits[name].append(fit_time)
        print(f"repetition {rep + 1}/{args.reps}: " + ", ".join(
            f"{n} {steps[n][-1] * 1e3:.3f} ms ({cpus[n][-1] * 1e3:.3f} CPU)" for n in variants), flush=True)

    if args.paired:
        ratios = []
        for rep in range(args.reps):
            ratio, _ = paired_overhead(loader, work / f"paired{rep}", max(4, min(50, args.steps // 8)))
            ratios.append(ratio)
        print(f"paired within-fit (callback on/off in alternating blocks of {max(4, min(50, args.steps // 8))} "
              f"steps, {args.reps} fits): "
              f"on/off per-step ratio median {statistics.median(ratios):.3f}x "
              f"(per fit: {', '.join(f'{r:.3f}' for r in ratios)})")

    print(f"\n{args.steps} steps x {args.reps} interleaved repetitions, batch {args.batch_size}, "
          f"64-256-256-10 MLP, torch.set_num_threads(1), torch {torch.__version__}, lightning {L.__version__}")
    def ratio(values: dict[str, list[float]], name: str) -> float:
        if "bare" not in values:
            return float("nan")
        return statistics.median(v / b for v, b in zip(values[name], values["bare"]))

    print(f"{'variant':<17} {'wall ms/step':>12} {'vs bare':>8} {'CPU ms/step':>12} {'vs bare':>8} "
          f"{'fit() s':>8} {'vs bare':>8}")
    for name in variants:
        print(f"{name:<17} {statistics.median(steps[name]) * 1e3:>12.3f} {ratio(steps, name):>7.3f}x "
              f"{statistics.median(cpus[name]) * 1e3:>12.3f} {ratio(cpus, name):>7.3f}x "
              f"{statistics.median(fits[name]):>8.2f} {ratio(fits, name):>7.3f}x")
    print("wall: median per-step wall time after warm-up; CPU: process CPU time (all threads) per step after "
          "warm-up, which other processes on a busy machine disturb less; ratios: median over repetitions of "
          "the ratio within each repetition.")

if __name__ == "__main__":
    main()
