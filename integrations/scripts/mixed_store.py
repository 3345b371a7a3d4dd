"""Fill a store with the mix a real user has, through the real integrations (the browser suite's
fixture): a 3-run Lightning sweep under a parent run, a scikit-learn GridSearchCV through
``Tracked``, XGBoost with early stopping through its callback, a plain PyTorch loop under
``autotrack.autolog()``, an evaluation run with PNG/CSV/JSON artifacts, a failed run, a killed
run (SIGTERM) and a crashed run (SIGKILL). Prints one JSON line: {"name": run_id, ...}.

    AUTOTRACK_DIR=/tmp/store python integrations/scripts/mixed_store.py
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import autotrack  # noqa: E402

ids: dict[str, str] = {}


def png(width: int, height: int) -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def lightning_sweep() -> None:
    import lightning.pytorch as L
    import torch

    from autotrack.integrations.lightning import AutotrackCallback

    class MLP(L.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val/loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    with autotrack.start_run(name="lightning-sweep", experiment="lightning-sweep") as parent:
        for lr in (0.3, 0.03, 0.003):
            torch.manual_seed(0)
            cb = AutotrackCallback(name=f"lr={lr}", experiment="lightning-sweep")
            trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                                enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                                log_every_n_steps=1, callbacks=[cb])
            trainer.fit(MLP(lr=lr), torch.utils.data.DataLoader(data, batch_size=16),
                        torch.utils.data.DataLoader(data, batch_size=32))
            ids[f"lightning lr={lr}"] = cb.run.id if hasattr(cb, "run") and cb.run is not None else autotrack.get_run("latest").id
    ids["lightning-sweep"] = parent.id


def sklearn_search() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from autotrack.integrations.sklearn import Tracked

    X, y = load_iris(return_X_y=True)
    tracked = Tracked(GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0, 10.0]}, cv=3),
                      run_name="grid-search", experiment="sklearn").fit(X, y)
    ids["sklearn grid"] = tracked.run_id_


def xgboost_early_stopping() -> None:
    import numpy as np
    import xgboost as xgb

    from autotrack.integrations.xgboost import AutotrackCallback

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    dtrain, dval = xgb.DMatrix(X[:200], label=y[:200]), xgb.DMatrix(X[200:], label=y[200:])
    with autotrack.start_run(name="xgboost-es", experiment="xgboost") as run:
        cb = AutotrackCallback(run)
        xgb.train({"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 3, "eta": 0.3, "nthread": 1},
                  dtrain, 200, evals=[(dtrain, "train"), (dval, "val")], early_stopping_rounds=5, verbose_eval=False,
                  callbacks=[cb])
    ids["xgboost"] = run.id


def plain_torch() -> None:
    import torch

    autotrack.autolog()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    with autotrack.start_run(name="torch-loop", experiment="torch") as run:
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
    ids["torch"] = run.id


def evaluation(tmp: Path) -> None:
    (tmp / "confusion.png").write_bytes(png(64, 40))
    (tmp / "predictions.csv").write_text("id,label,score\n1,cat,0.91\n2,dog,0.40\n3,cat,0.77\n")
    (tmp / "metrics.json").write_text(json.dumps({"accuracy": 0.93, "f1": 0.91, "classes": 2}))
    with autotrack.start_run(name="eval", experiment="torch", params={"split": "test", "threshold": 0.5}) as run:
        run.log_metrics({"test/accuracy": 0.93, "test/f1": 0.91})
        for name in ("confusion.png", "predictions.csv", "metrics.json"):
            run.log_artifact(str(tmp / name))
    ids["eval"] = run.id


def failed() -> None:
    try:
        with autotrack.start_run(name="diverged", experiment="torch", params={"lr": 5.0}) as run:
            run.log_metric("train/loss", 1.0, step=0)
            run.log_metric("train/loss", 1e6, step=1)
            raise FloatingPointError("loss is nan at step 2")
    except FloatingPointError:
        pass
    ids["failed"] = run.id


CHILD = """
import os, sys, time, autotrack
run = autotrack.start_run(name=sys.argv[1], experiment="torch", params={"lr": 0.02})
for s in range(5):
    run.log_metric("train/loss", 1.0 / (s + 1), step=s)
run.flush()
print(run.id, flush=True)
time.sleep(120)
"""


def ended_by_signal(name: str, sig: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, name], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    run_id = proc.stdout.readline().strip()
    time.sleep(0.3)
    proc.send_signal(sig)
    proc.wait(30)
    ids[name] = run_id


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    lightning_sweep()
    sklearn_search()
    xgboost_early_stopping()
    evaluation(tmp)
    failed()
    ended_by_signal("killed", signal.SIGTERM)
    ended_by_signal("crashed", signal.SIGKILL)
    plain_torch()  # last: autolog() patches torch for the rest of this process
    autotrack.flush()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
