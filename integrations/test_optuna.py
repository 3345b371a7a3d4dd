"""Optuna: real studies (TPE with a seed, a median pruner) training a real tiny model; every trial
recorded with its state, intermediate values, pruned step and exception, checked against what
the study itself holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402

import autotrack  # noqa: E402
from autotrack.integrations.optuna import AutotrackCallback, enqueue_from_runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
X, Y = load_digits(return_X_y=True)
XTR, XVA, YTR, YVA = X[:600], X[1200:], Y[:600], Y[1200:]
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail"}


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _objective(trial):
    """Five epochs of SGD, each reported; trial 3 raises; the pruner stops the weak ones."""
    alpha = trial.suggest_float("alpha", 1e-5, 1e-1, log=True)
    loss = trial.suggest_categorical("loss", ["hinge", "log_loss"])
    if trial.number == 3:
        raise ValueError("trial 3 is broken")
    clf = SGDClassifier(alpha=alpha, loss=loss, random_state=0)
    acc = 0.0
    for step in range(5):
        clf.partial_fit(XTR, YTR, classes=np.arange(10))
        acc = clf.score(XVA, YVA)
        trial.report(acc, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return acc


def _study(name: str):
    return optuna.create_study(direction="maximize", study_name=name, sampler=optuna.samplers.TPESampler(seed=0),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))


def _check_recorded(study, store) -> dict[int, autotrack.RunRecord]:
    """One parent for the study; one child per trial, each matching the study's own record."""
    frame = autotrack.runs(store=store)
    parents = frame[frame["parent_id"].isna()]
    assert len(parents) == 1
    parent = autotrack.get_run(parents["id"].iloc[0], store=store)
    assert parent.tags["autotrack.integration"] == "optuna"
    assert parent.params["sampler.class"] == "TPESampler" and parent.params["sampler.n_startup_trials"] == 10
    assert parent.params["pruner.class"] == "MedianPruner" and parent.params["pruner.n_startup_trials"] == 2
    assert parent.params["directions"] == ["maximize"] and parent.params["study_name"] == study.study_name
    children = {int(autotrack.get_run(i, store=store).tags["trial"]): autotrack.get_run(i, store=store)
                for i in frame[frame["parent_id"] == parent.id]["id"]}
    assert sorted(children) == [t.number for t in study.trials]
    best = None
    for t in study.trials:
        rec = children[t.number]
        assert rec.tags["state"] == STATES[t.state.name]
        assert rec.status == ("failed" if t.state.name == "FAIL" else "finished")
        assert rec.params["alpha"] == t.params["alpha"]
        inter = rec.metric("optuna/intermediate_value") if t.intermediate_values else None
        if t.intermediate_values:
            assert inter["step"].tolist() == sorted(t.intermediate_values)
            assert inter["value"].tolist() == [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        dist = rec.info("optuna")["distributions"]["alpha"]
        assert (dist["type"], dist["low"], dist["high"], dist["log"]) == ("FloatDistribution", 1e-5, 1e-1, True)
        if t.state.name == "PRUNED":
            assert int(rec.tags["pruned_step"]) == max(t.intermediate_values)
        if t.state.name == "COMPLETE":
            assert rec.metric("optuna/value")["value"].tolist() == [t.value]
            best = t.value if best is None else max(best, t.value)
        if best is not None and t.state.name == "COMPLETE":
            steps = parent.metric("optuna/best_value")
            assert steps["value"][steps["step"].tolist().index(t.number)] == best
    return children


def test_autolog_records_every_trial_and_the_training_inside_is_the_trials_run(store):
    autotrack.autolog(system_metrics=False)  # optuna and scikit-learn among the others
    try:
        study = _study("digits")

        def objective(trial):
            value = _objective(trial)
            # a recorded fit inside the objective: it writes into the trial's run, not a run of its own
            LogisticRegression(C=trial.params["alpha"] * 1000, max_iter=20).fit(XTR[:200], YTR[:200])
            return value

        study.optimize(objective, n_trials=10, catch=(ValueError,))
    finally:
        autotrack.autolog(disable=True)
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "PRUNED", "FAIL"} <= states, states  # the study went on after the failure
    children = _check_recorded(study, store)
    failed = children[3]
    assert failed.status == "failed" and "trial 3 is broken" in failed.error["message"]
    assert "ValueError" in failed.tags["error"]
    for t in study.trials:
        if t.state.name == "COMPLETE":
            rec = children[t.number]
            assert rec.tags["autotrack.training"] == "sklearn"  # the fit wrote into the trial's run
            assert rec.params["C"] == pytest.approx(t.params["alpha"] * 1000)
            assert any(a.kind == "model" for a in rec.artifacts)
    assert len(autotrack.runs(store=store)) == 1 + len(study.trials)  # no run beside the trials


def test_the_callback_alone_records_each_trial_from_the_study(store):
    study = _study("digits-callback")
    callback = AutotrackCallback()
    study.optimize(_objective, n_trials=8, catch=(ValueError,), callbacks=[callback])
    callback.end()
    _check_recorded(study, store)
    parent = autotrack.get_run(study.user_attrs["autotrack.run_id"], store=store)
    assert parent.status == "finished"


def test_a_bad_argument_is_a_clear_error():
    with pytest.raises(autotrack.InvalidArgumentError, match="run"):
        AutotrackCallback(run="abc")
    with pytest.raises(autotrack.InvalidArgumentError, match="metric"):
        enqueue_from_runs(_study("x"), metric=None)


def test_warm_start_adds_exactly_the_runs_inside_the_distributions(store):
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(12):
        lr = float(10 ** rng.uniform(-5, 0))  # some fall outside [1e-4, 1e-1]
        layers = int(rng.integers(1, 6))      # some outside [1, 4]
        with autotrack.start_run(experiment="churn", params={"lr": lr, "layers": layers}) as run:
            run.log_metric("val/loss", 1.0 / (i + 1), step=0)
            if i == 5:
                run.log_metric("val/loss", 0.01, step=1)  # the last value is the one taken
        if 1e-4 <= lr <= 1e-1 and 1 <= layers <= 4:
            expected[run.id] = (lr, layers, 0.01 if i == 5 else 1.0 / (i + 1))
    with autotrack.start_run(experiment="other", params={"lr": 0.01, "layers": 2}) as other:
        other.log_metric("val/loss", 0.5)
    assert 0 < len(expected) < 12
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "layers": optuna.distributions.IntDistribution(1, 4)}
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=3))
    counts = enqueue_from_runs(study, where="experiment = 'churn' and status = 'finished'", metric="val/loss",
                               distributions=dists)
    assert counts == {"added": len(expected), "skipped": 12 - len(expected)}
    got = {t.user_attrs["autotrack.from_run"]: (t.params["lr"], t.params["layers"], t.value) for t in study.trials}
    assert got == expected
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert enqueue_from_runs(study, where="experiment = 'churn'", metric="val/loss") == {
        "added": 0, "skipped": 12}  # the distributions now come from the study; nothing twice
    # the sampler is past its random start-up: the next trial is drawn from the model of these
    study.optimize(lambda t: (np.log10(t.suggest_float("lr", 1e-4, 1e-1, log=True)) + 2) ** 2
                   + t.suggest_int("layers", 1, 4), n_trials=3)
    assert len(study.trials) == len(expected) + 3


STORAGE = textwrap.dedent("""
    def storage(where):
        import optuna
        if where.startswith("journal:"):  # Optuna's multi-process file storage
            from optuna.storages.journal import JournalFileBackend
            return optuna.storages.JournalStorage(JournalFileBackend(where[len("journal:"):]))
        return where
""")
_helpers: dict = {}
exec(STORAGE, _helpers)  # noqa: S102 - the same helper in this process and the workers
storage_of = _helpers["storage"]

WORKER = STORAGE + textwrap.dedent("""
    import sys, optuna, autotrack
    from autotrack.integrations.optuna import autolog
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    autolog()
    study = optuna.load_study(study_name="shared", storage=storage(sys.argv[1]))
    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        for step in range(3):
            trial.report((x - 2) ** 2 + step, step)
        if trial.number % 7 == 6:
            raise ValueError("unlucky")
        return (x - 2) ** 2
    study.optimize(objective, n_trials=6, catch=(ValueError,))
""")


def run_workers(storage: str, store: str, n: int = 4) -> None:
    optuna.create_study(study_name="shared", storage=storage_of(storage), direction="minimize")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STORE": store, "AUTOTRACK_CAPTURE": "0",
           "AUTOTRACK_SYSTEM_METRICS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, storage], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [err[-2000:] for _, err in outs]


def check_workers(storage: str, store: str, n: int = 4) -> None:
    study = optuna.load_study(study_name="shared", storage=storage_of(storage))
    assert len(study.trials) == 6 * n
    frame = autotrack.runs(store=store)
    parents = frame[frame["parent_id"].isna()]
    assert len(parents) == 1, parents[["id", "name"]]  # one parent for every worker
    assert parents["id"].iloc[0] == study.user_attrs["autotrack.run_id"]
    children = frame[frame["parent_id"] == parents["id"].iloc[0]]
    numbers = sorted(int(v) for v in children["tags.trial"])
    assert numbers == [t.number for t in study.trials]  # every trial once
    by_number = dict(zip((int(v) for v in children["tags.trial"]), children["tags.state"], strict=True))
    assert by_number == {t.number: STATES[t.state.name] for t in study.trials}  # no lost states


def test_four_workers_on_one_storage_write_one_parent_and_every_trial_once(tmp_path):
    storage = f"journal:{tmp_path / 'optuna.log'}"
    store = str(tmp_path / "runs")
    run_workers(storage, store)
    check_workers(storage, store)


def test_search_cv_candidates_read_like_trials_with_a_failed_one_as_fail(store):
    """GridSearchCV's children carry `trial` and `state` as a study's trials do; a candidate whose
    fits all failed (error_score=nan) reads `fail`."""
    from sklearn.model_selection import GridSearchCV

    from autotrack.integrations.sklearn import Tracked

    grid = {"C": [0.1, 1.0], "penalty": ["l2", "bogus"]}
    search = GridSearchCV(LogisticRegression(max_iter=50), grid, cv=2, error_score=np.nan)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracked = Tracked(search).fit(XTR, YTR)
    children = [autotrack.get_run(c.id) for c in autotrack.get_run(tracked.run_id_).children]
    scores = tracked.estimator_.cv_results_["mean_test_score"]
    assert sorted((int(c.tags["trial"]), c.tags["state"]) for c in children) == [
        (i, "fail" if np.isnan(s) else "complete") for i, s in enumerate(scores)]
    assert {c.tags["state"] for c in children} == {"fail", "complete"}


def test_a_lightning_fit_inside_a_trial_writes_into_the_trials_run(store):
    """Under autolog, a Lightning Trainer.fit in the objective takes over the trial's run: its
    loss curve is in it, and no run of its own appears."""
    torch = pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")

    class Tiny(pl.LightningModule):
        def __init__(self, lr):
            super().__init__()
            self.lr = lr
            self.net = torch.nn.Linear(64, 10)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    data = torch.utils.data.TensorDataset(torch.tensor(XTR, dtype=torch.float32) / 16, torch.tensor(YTR))
    autotrack.autolog(system_metrics=False)
    try:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))

        def objective(trial):
            trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, limit_train_batches=5)
            trainer.fit(Tiny(trial.suggest_float("lr", 1e-3, 1e-1, log=True)),
                        torch.utils.data.DataLoader(data, batch_size=32))
            return float(trainer.callback_metrics.get("train_loss", 0.0)) + trial.params["lr"]

        study.optimize(objective, n_trials=2)
    finally:
        autotrack.autolog(disable=True)
    frame = autotrack.runs(store=store)
    assert len(frame) == 3  # the study and its two trials, nothing else
    for t in study.trials:
        (run_id,) = frame[frame["tags.trial"] == str(t.number)]["id"]
        rec = autotrack.get_run(run_id, store=store)
        assert rec.tags["autotrack.training"] == "lightning"
        assert len(rec.metric("train/loss")) == 5
        assert rec.params["lr"] == t.params["lr"], rec.params
