"""End to end on the team store: a scikit-learn and a Lightning training run written straight into
PostgreSQL with artifacts in an S3 bucket, read back through the public API."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autotrack


@pytest.fixture
def team(s3_artifacts, postgres_location):
    """``autotrack.set_store(pg_url)`` with ``AUTOTRACK_ARTIFACTS=s3://...``, as a team sets it up."""
    from autotrack import _run

    previous = _run._store_override
    st = autotrack.set_store(postgres_location)
    assert st.blobs.location == s3_artifacts
    yield st
    while (run := autotrack.active_run()) is not None:
        run.end()
    autotrack.flush()
    _run._store_override = previous


def test_sklearn_on_postgres_and_s3(team, s3_server, s3_artifacts):
    pytest.importorskip("sklearn")
    from sklearn import metrics as skm
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from autotrack.integrations.sklearn import Tracked, load_model

    X, y = load_iris(return_X_y=True, as_frame=True)
    X_val, y_val = X.iloc[::3], y.iloc[::3]
    tracked = Tracked(LogisticRegression(C=0.5, max_iter=300), experiment="iris", eval_set=(X_val, y_val)).fit(X, y)
    rec = autotrack.get_run(tracked.run_id_)
    assert rec.status == "finished" and rec.experiment == "iris" and rec.params["C"] == 0.5
    est = tracked.estimator_
    assert rec.summary["val/accuracy"] == pytest.approx(skm.accuracy_score(y_val, est.predict(X_val)), rel=1e-12)
    assert rec.summary["val/log_loss"] == pytest.approx(skm.log_loss(y_val, est.predict_proba(X_val)), rel=1e-9)
    model = [a for a in rec.artifacts if a.kind == "model"]
    assert len(model) == 1 and model[0].stored
    bucket = s3_artifacts.split("/")[2]
    key = f"runs/{model[0].sha256[:2]}/{model[0].sha256}"
    assert s3_server.client().head_object(Bucket=bucket, Key=key)["ContentLength"] == model[0].size
    loaded = load_model(rec.id) if "store" not in load_model.__code__.co_varnames else load_model(rec.id, store=team)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    frame = autotrack.runs(experiment="iris", where="params.C < 1", order_by="metrics.val/accuracy DESC")
    assert frame["id"].tolist() == [rec.id]


def test_lightning_on_postgres_and_s3(team, s3_server, s3_artifacts, tmp_path):
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning")
    from autotrack.integrations.lightning import AutotrackCallback

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)

    class MLP(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
            self.losses: list[float] = []
            self.norms: list[float] = []

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            self.losses.append(loss.item())
            return loss

        def on_before_optimizer_step(self, optimizer):
            grads = [p.grad.double() for p in self.parameters() if p.grad is not None]
            self.norms.append(math.sqrt(sum(float((g * g).sum()) for g in grads)))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    model = MLP()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
                        callbacks=[AutotrackCallback(copy_checkpoints=True), ckpt])
    trainer.fit(model, data)
    frame = autotrack.runs()
    assert len(frame) == 1
    rec = autotrack.get_run(frame["id"].iloc[0])
    assert rec.status == "finished"
    steps, losses, _ = rec.metric_arrays("train/loss")
    assert steps.tolist() == list(range(16))
    np.testing.assert_allclose(losses, model.losses, rtol=1e-6)
    np.testing.assert_allclose(rec.metric_arrays("train/grad_norm")[1], model.norms, rtol=1e-5)
    assert rec.summary["train/lr"] == 0.1
    stored = [a for a in rec.artifacts if a.stored]
    assert stored, rec.artifacts
    for art in stored:
        assert team.blobs.verify(art.sha256)
        assert len(rec.read_artifact(art.name)) == art.size


def test_model_registry_on_postgres_and_s3(team, s3_server, s3_artifacts, postgres_location):
    """register_model / set_alias / rollback / load_model with set_store("postgresql://...")."""
    pytest.importorskip("sklearn")
    from click.testing import CliRunner
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from autotrack._cli import cli
    from autotrack._cli_models import models_command
    from autotrack.integrations.sklearn import Tracked

    cli.add_command(models_command)

    X, y = load_iris(return_X_y=True)
    first = Tracked(LogisticRegression(C=0.1, max_iter=300), register_as="iris").fit(X, y)
    second = Tracked(LogisticRegression(C=10.0, max_iter=300), register_as="iris").fit(X, y)
    v1, v2 = first.model_version_, second.model_version_
    assert (v1.version, v2.version) == (1, 2) and v2.run_id == second.run_id_ and v2.framework == "sklearn"
    bucket = s3_artifacts.split("/")[2]  # the version's bytes are in the team's bucket
    assert s3_server.client().head_object(Bucket=bucket, Key=f"runs/{v2.sha256[:2]}/{v2.sha256}")["ContentLength"] == v2.size

    autotrack.set_alias("iris", "champion", 1)
    autotrack.set_alias("iris", "champion", 2, reason="C=10 fits better")
    np.testing.assert_array_equal(autotrack.load_model("iris@champion").predict_proba(X), second.predict_proba(X))
    autotrack.rollback("iris", "champion", reason="back to C=0.1")
    champion = autotrack.load_model("iris@champion")
    assert type(champion) is LogisticRegression
    np.testing.assert_array_equal(champion.predict_proba(X), first.predict_proba(X))
    np.testing.assert_array_equal(autotrack.load_model("iris/2").predict(X), second.predict(X))
    assert [(h.from_version, h.to_version, h.action) for h in autotrack.get_model("iris").history] == [
        (None, 1, "set"), (1, 2, "set"), (2, 1, "rollback")]

    out = CliRunner().invoke(cli, ["models", "show", "iris", "--store", postgres_location])
    assert out.exit_code == 0, out.output
    assert "C=10 fits better" in out.output and "back to C=0.1" in out.output
