"""Overhead of autotrack's Transformers callback against a bare ``Trainer`` and against the
``MLflowCallback`` Transformers ships (``report_to="mlflow"``, a SQLite tracking URI).

    python benchmarks/bench_transformers.py [--reps 5] [--steps 60] [--threads 1]

A BERT built from a config (hidden 64, 2 layers, 4 heads, sequences of 32 tokens, batch 16;
nothing is downloaded), ``--steps`` optimizer steps with ``logging_steps=1`` (every step logged:
the worst case for a tracker), no checkpoints, per measurement, in these modes: ``bare``
(``report_to="none"``), ``autotrack`` (``callbacks=[AutotrackCallback()]``) and ``mlflow`` (when
mlflow is importable). Repetitions are interleaved; figures are medians over repetitions of:

* ``step_s``: the steady-state step time: the median time between the starts of two optimizer
  steps, from step 10 on (a stamp callback runs first in every mode; the logging, and so the
  trackers' ``on_log``, fall inside the interval);
* ``wall_s`` / ``cpu_s``: the whole ``trainer.train()`` (plus each tracker's start and end).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import autotrack  # noqa: E402
from _ratios import interleaved, ratios  # noqa: E402
from autotrack.integrations.transformers import AutotrackCallback  # noqa: E402


class Stamps(TrainerCallback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.stamps.append(time.perf_counter())


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 1000, (n, 32), generator=g)
        self.y = (self.x[:, 0] > 500).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steady on a shared machine)")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="bench-hf-"))
    autotrack.set_store(folder / "autotrack")
    data = Tokens(16 * args.steps)
    if find_spec("mlflow") and not args.no_mlflow:
        import logging

        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench"
        logging.getLogger("mlflow").setLevel(logging.ERROR)

    def train(mode: str) -> dict[str, float]:
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                         num_attention_heads=4, intermediate_size=128,
                                                         max_position_embeddings=64, num_labels=2))
        stamps = Stamps()
        callbacks: list[Any] = [stamps] + ([AutotrackCallback(log_checkpoints=False)] if mode == "autotrack" else [])
        targs = TrainingArguments(str(folder / "out"), max_steps=args.steps, per_device_train_batch_size=16,
                                  logging_steps=1, save_strategy="no", report_to=["mlflow"] if mode == "mlflow" else "none",
                                  use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0)
        trainer = Trainer(model=model, args=targs, train_dataset=data, callbacks=callbacks)
        trainer.callback_handler.callbacks.remove(stamps)
        trainer.callback_handler.callbacks.insert(0, stamps)  # first: the interval holds every other callback
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        steps = [b - a for a, b in zip(stamps.stamps[10:], stamps.stamps[11:])]
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                "step_s": statistics.median(steps)}

    modes = {"bare": lambda: train("bare"), "autotrack": lambda: train("autotrack")}
    if "MLFLOW_TRACKING_URI" in os.environ:
        modes["mlflow"] = lambda: train("mlflow")
    for mode in modes:  # warm-up: first allocations, MLflow's database
        train(mode)
    samples = interleaved(modes, args.reps)
    ratios(samples, f"Trainer: tiny BERT (hidden 64, 2 layers), batch 16 x 32 tokens, {args.steps} steps, "
                    f"logging_steps=1, {args.threads} torch thread(s), {args.reps} interleaved repetitions (medians)")


if __name__ == "__main__":
    main()
