"""Per-step overhead between fits: every (model, variant) trains in a process of its own.

    python benchmarks/bench_steps.py                       # plain PyTorch autolog, 9 rounds
    python benchmarks/bench_steps.py --framework lightning # the Lightning callback and its peers
    python benchmarks/bench_steps.py --models mlp --rounds 11

Each round runs every variant of every model once, each in a fresh process (so nothing one
variant patched, imported or warmed up carries over to another), in a shuffled order; a variant's
figure for a round is its median step time (after the warm-up steps) divided by the ``bare`` median
of the same model in the same round, so that drift of the machine between rounds cancels. Printed:
the median of those paired ratios over the rounds, with their min-max, and the median step times.

Models (CPU, ``torch.set_num_threads(1)``, batch 64, Adam, StepLR):

* ``mlp``   -- 64-256-256-10 MLP (6 parameter tensors; ~1-3 ms a step, where a fixed per-step
  cost is most visible);
* ``deep``  -- 100 Linear layers of width 32 with ReLU (200 parameter tensors: per-tensor costs);
* ``conv``  -- a small conv net on 3x32x32 images (~20 ms a step).

Variants: ``bare``; ``autotrack`` (plain PyTorch: ``autotrack.autolog()``; Lightning:
``AutotrackCallback()``); Lightning only: ``csv`` (``CSVLogger(log_every_n_steps=1)``) and
``mlflow`` (``mlflow.pytorch.autolog(log_every_n_step=1, log_models=False)``, a SQLite tracking URI)
when mlflow is importable. The plain loop clips gradients (``clip_grad_norm_``) unless
``--no-clip``: without clipping autolog takes the gradient norm itself (one fused
``torch._foreach_norm`` a step, the cost of reading every gradient once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"mlp": 1500, "deep": 300, "conv": 150}
WARMUP = {"mlp": 300, "deep": 50, "conv": 30}


def _model(name: str):
    from torch import nn

    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    if name == "deep":  # 1 + 98 + 1 Linear layers: 200 parameter tensors
        hidden = [m for _ in range(98) for m in (nn.Linear(32, 32), nn.ReLU())]
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), *hidden, nn.Linear(32, 10))
    if name == "conv":
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
        )
    raise SystemExit(f"unknown model {name!r}")


def _data(name: str, steps: int):
    import torch

    g = torch.Generator().manual_seed(0)
    shape = {"mlp": (64,), "deep": (64,), "conv": (3, 32, 32)}[name]
    n = min(steps, 64)  # batches are reused: the data's size is not what is measured
    return torch.randn(n, 64, *shape, generator=g), torch.randint(0, 10, (n, 64), generator=g)


def _torch_worker(model_name: str, variant: str, steps: int, clip: bool) -> list[float]:
    import torch
    from torch import nn

    import autotrack

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if variant == "autotrack":
        autotrack.autolog()
    model = _model(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=500)
    xs, ys = _data(model_name, steps)
    times, perf = [], time.perf_counter
    for i in range(steps):
        t0 = perf()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xs[i % len(xs)]), ys[i % len(ys)])
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        times.append(perf() - t0)
    if variant == "autotrack":
        from autotrack.integrations.torch import current_run

        run = current_run()
        autotrack.autolog(disable=True)
        assert run is not None and len(autotrack.get_run(run.id).metric("train/loss")) == steps
    return times


def _lightning_worker(model_name: str, variant: str, steps: int, tmp: str) -> list[float]:
    import logging
    import warnings

    import torch
    from torch import nn

    try:
        import lightning.pytorch as L
    except ImportError:  # pragma: no cover
        import pytorch_lightning as L  # type: ignore[no-redef]

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    times: list[float] = []

    class Timer(L.Callback):
        """The time from one batch's start to the next one's: the whole step, every callback's and
        logger's work in it included, whatever order Lightning calls them in."""

        last: float | None = None

        def on_train_batch_start(self, *args) -> None:
            now = time.perf_counter()
            if self.last is not None:
                times.append(now - self.last)
            self.last = now

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _model(model_name)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=1e-3)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=500)]

    from torch.utils.data import DataLoader, TensorDataset

    xs, ys = _data(model_name, steps)  # the same batches as the plain loop, cycled over epochs
    loader = DataLoader(TensorDataset(xs.flatten(0, 1), ys.flatten()), batch_size=64, shuffle=False)
    callbacks: list[object] = [Timer()]
    logger: object = False
    if variant == "autotrack":
        import autotrack
        from autotrack.integrations.lightning import AutotrackCallback

        autotrack.set_store(os.path.join(tmp, "store"))
        callbacks.append(AutotrackCallback())
    elif variant == "csv":
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(tmp)
    elif variant == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        os.chdir(tmp)  # its artifacts (model_summary.txt) go to ./mlruns: keep them out of the repository
        mlflow.pytorch.autolog(log_every_n_step=1, log_models=False)
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, logger=logger, callbacks=callbacks, accelerator="cpu",
                        devices=1, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=1, num_sanity_val_steps=0)
    trainer.fit(Module(), train_dataloaders=loader)
    return times


def worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUTOTRACK_STORE"] = os.path.join(tmp, "store")
        if args.framework == "torch":
            times = _torch_worker(args.model, args.variant, args.steps, not args.no_clip)
        else:
            times = _lightning_worker(args.model, args.variant, args.steps, tmp)
    warm = WARMUP[args.model] if args.steps > 2 * WARMUP[args.model] else args.steps // 4
    print(json.dumps({"median": statistics.median(times[warm:]), "steps": len(times)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "lightning"), default="torch")
    parser.add_argument("--models", default="mlp,deep,conv")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every model's step count")
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "VARIANT", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.model, args.variant, steps = args.worker
        args.steps = int(steps)
        worker(args)
        return
    variants = ["bare", "autotrack"]
    if args.framework == "lightning":
        variants.append("csv")
        if find_spec("mlflow") and not args.no_mlflow:
            variants.append("mlflow")
    models = args.models.split(",")
    jobs = [(m, v) for m in models for v in variants]
    medians: dict[tuple[str, str], list[float]] = {j: [] for j in jobs}
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.time()
    for r in range(args.rounds):
        rng.shuffle(jobs)
        for model, variant in jobs:
            steps = max(40, int(STEPS[model] * args.steps_scale))
            cmd = [sys.executable, __file__, "--framework", args.framework, "--worker", model, variant, str(steps)]
            if args.no_clip:
                cmd.append("--no-clip")
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if done.returncode:
                raise SystemExit(f"{model}/{variant} failed:\n{done.stderr[-3000:]}")
            medians[(model, variant)].append(json.loads(done.stdout.strip().splitlines()[-1])["median"])
        print(f"round {r + 1}/{args.rounds} done ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    title = "plain PyTorch autolog" if args.framework == "torch" else "Lightning"
    clip = "" if args.framework == "lightning" else (", no clipping" if args.no_clip else ", clip_grad_norm_")
    print(f"{title}{clip}: {args.rounds} rounds, each (model, variant) in its own process; "
          f"ratio = step-time median / bare's in the same round (median [min-max] over rounds)")
    print(f"{'model':6s} {'variant':10s} {'step ms':>8s} {'ratio':>7s}  range")
    for model in models:
        bare = medians[(model, "bare")]
        for variant in variants:
            values = medians[(model, variant)]
            paired = [v / b for v, b in zip(values, bare)]
            print(f"{model:6s} {variant:10s} {statistics.median(values) * 1e3:8.3f} {statistics.median(paired):7.3f}x"
                  f"  [{min(paired):.3f}-{max(paired):.3f}]")


if __name__ == "__main__":
    main()
