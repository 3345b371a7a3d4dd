"""scikit-learn: the defects of issues 13 and 15, each with a small script of the shape that broke."""

from __future__ import annotations

import os

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.model_selection as model_selection
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    LearningCurveDisplay,
    cross_val_score,
    learning_curve,
    validation_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import autotrack
from autotrack.integrations import sklearn as at_sklearn
from autotrack.integrations.sklearn import Tracked, autolog

ROOT = Path(__file__).resolve().parents[1]
X, y = load_iris(return_X_y=True)


@pytest.fixture
def autologged(store):
    autolog(log_models=False)
    yield store
    autolog(disable=True)


def _all_runs() -> list[autotrack.RunRecord]:
    autotrack.flush()
    return [autotrack.get_run(i) for i in autotrack.runs()["id"]]


# -- grouping by patched entry points (no frames) -----------------------------------------------


@pytest.mark.parametrize("call, what, fits", [
    (lambda: learning_curve(LogisticRegression(max_iter=300), X, y, cv=3, train_sizes=[0.5, 1.0]),
     "learning_curve", 6),
    (lambda: validation_curve(Ridge(), X, y, param_name="alpha", param_range=[0.1, 1.0], cv=2),
     "validation_curve", 4),
    (lambda: cross_val_score(LogisticRegression(max_iter=300), X, y, cv=3), "cross_val_score", 3),
])
def test_model_selection_functions_group_their_fits(autologged, call, what, fits):
    call()
    runs = _all_runs()
    (group,) = [r for r in runs if r.parent_id is None]
    assert group.tags["autotrack.group"] == what and group.status == "finished"
    assert len(runs) == 1 + fits and all(r.parent_id == group.id for r in runs if r is not group)


def test_learning_curve_display_groups_its_fits(autologged):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    LearningCurveDisplay.from_estimator(LogisticRegression(max_iter=300), X, y, cv=2, train_sizes=[0.5, 1.0])
    runs = _all_runs()
    (group,) = [r for r in runs if r.parent_id is None]
    assert group.tags["autotrack.group"] == "learning_curve" and len(runs) == 1 + 4


def test_grouping_reaches_names_imported_before_autolog_and_writes_no_frame(store):
    """``cross_val_score`` was bound at this module's import, before autolog patched anything."""
    autolog(log_models=False)
    try:
        scores = cross_val_score(LogisticRegression(max_iter=300), X, y, cv=2)
    finally:
        autolog(disable=True)
    written = [k for k in sys._getframe().f_locals if "autotrack" in k]
    assert written == []
    runs = _all_runs()
    assert len(runs) == 3 and len(scores) == 2
    assert model_selection.cross_val_score is cross_val_score  # the public object is never replaced


def test_private_detail_validate_params_cell_is_still_there():
    """Guard: the model-selection functions keep the decorated function in a ``func`` cell."""
    from autotrack.integrations._wrapped import inner_slot

    for name in ("cross_validate", "cross_val_score", "cross_val_predict", "permutation_test_score",
                 "learning_curve", "validation_curve"):
        assert inner_slot(getattr(model_selection, name)) is not None, (
            f"sklearn.model_selection.{name} is no longer a validate_params wrapper with a 'func' cell: "
            "update autotrack/integrations/sklearn/_grouping.py")


def test_private_detail_available_if_descriptor_fn():
    from sklearn.pipeline import Pipeline
    from sklearn.utils._available_if import _AvailableIfDescriptor

    descriptor = Pipeline.__dict__["fit_transform"]
    assert isinstance(descriptor, _AvailableIfDescriptor) and callable(descriptor.fn), (
        "Pipeline.fit_transform is no longer an _AvailableIfDescriptor with .fn: update _autolog.patch_targets")


def test_private_detail_visual_block():
    try:
        from sklearn.utils._repr_html.estimator import _VisualBlock
    except ImportError:  # scikit-learn 1.6
        from sklearn.utils._estimator_html_repr import _VisualBlock

    assert "LogisticRegression" in Tracked(LogisticRegression())._repr_html_() and _VisualBlock


def test_cross_val_score_groups_on_this_python_without_frame_tricks_in_a_subprocess(tmp_path):
    script = (
        "import autotrack\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import cross_val_score\n"
        "autotrack.autolog(log_models=False, system_metrics=False, seeds=False)\n"
        "X, y = load_iris(return_X_y=True)\n"
        "def run():\n"
        "    return cross_val_score(LogisticRegression(max_iter=300), X, y, cv=3)\n"
        "run()\n"
        "import gc; gc.disable()\n"  # a group that ends with its frame would stay open here
        "run()\n"
        "autotrack.flush()\n"
        "table = autotrack.runs()\n"
        "groups = table[table['parent_id'].isna()]\n"
        "print(len(table), len(groups), sorted(set(table['status'])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(tmp_path / "store"), "AUTOTRACK_CAPTURE": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "2", "['finished']"], done.stdout


# -- recording is piece by piece ------------------------------------------------------------------


class _BrokenPredict(BaseEstimator):
    _estimator_type = "classifier"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        return tags

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        raise RuntimeError("predict exploded")


def test_one_failing_metric_keeps_the_others_and_the_model(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    from autotrack.integrations.sklearn import _metrics

    monkeypatch.setattr(_metrics, "_log_loss", lambda *a, **k: 1 / 0)  # the metric's own computation
    with pytest.warns(RuntimeWarning, match="log_loss"):
        tracked = Tracked(LogisticRegression(max_iter=300)).fit(X, y)
    rec = autotrack.get_run(tracked.run_id_)
    pred = tracked.predict(X)
    assert "train/log_loss" not in rec.summary
    assert rec.summary["train/roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, tracked.predict_proba(X), multi_class="ovr"))
    assert rec.summary["train/accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rec.summary["train/f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert [a.kind for a in rec.artifacts if a.kind != "report"] == ["model"]  # report: the evaluation plots
    assert "ZeroDivisionError" in rec.tags["autotrack.recording_error"]


def test_failing_predict_keeps_params_data_and_model(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    with pytest.warns(RuntimeWarning, match="predict exploded"):
        tracked = Tracked(_BrokenPredict(), log_model=False).fit(X, y)
    rec = autotrack.get_run(tracked.run_id_)
    assert rec.status == "finished" and rec.info("data")["train"]["shape"] == [150, 4]
    assert rec.summary["train/fit_time"] > 0 and "predict exploded" in rec.tags["autotrack.recording_error"]


class _LongParams(BaseEstimator):
    def __init__(self, **kwargs):
        self._kw = kwargs
        for k, v in kwargs.items():
            setattr(self, k, v)

    def get_params(self, deep=True):
        return dict(self._kw)

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        return tags


def test_over_long_param_key_is_shortened_with_its_length_and_the_rest_is_recorded(store):
    long_key = "p" * 600
    tracked = Tracked(_LongParams(**{long_key: 3, "alpha": 0.5}), log_model=True).fit(X, y.astype(float))
    rec = autotrack.get_run(tracked.run_id_)
    (stored,) = [k for k in rec.params if k.startswith("ppp")]
    assert len(stored) <= 500 and "600 chars" in stored and rec.params[stored] == 3
    assert rec.params["alpha"] == 0.5
    assert rec.summary["train/mae"] == pytest.approx(skm.mean_absolute_error(y, np.zeros(len(y))))
    assert [a.kind for a in rec.artifacts] == ["model"] and "autotrack.recording_error" not in rec.tags


# -- the outermost fit, data described before fit ---------------------------------------------------


class ChildMod(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight)
        self.prediction = "ready"
        return self

    def predict(self, X):
        assert self.prediction == "ready"
        return super().predict(X)


def test_a_user_subclass_is_recorded_after_its_own_fit_returns(autologged):
    fitted = ChildMod(max_iter=300).fit(X, y)

    class DefinedAfterAutolog(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            super().fit(X, y, sample_weight)
            self.prediction = "ready"
            return self

        def predict(self, X):
            assert self.prediction == "ready"
            return LogisticRegression.predict(self, X)

    later = DefinedAfterAutolog(max_iter=300).fit(X, y)
    runs = _all_runs()
    assert len(runs) == 2 and all("autotrack.recording_error" not in r.tags for r in runs)
    by_class = {r.tags["estimator"].rsplit(".", 1)[-1]: r for r in runs}
    for est in (fitted, later):
        rec = by_class[type(est).__name__]
        assert rec.summary["train/accuracy"] == pytest.approx(skm.accuracy_score(y, est.predict(X)))


class _Doubler(TransformerMixin, BaseEstimator):
    """Mutates X in place in fit (a shape users really write)."""

    def fit(self, X, y=None):
        X *= 2.0
        return self

    def transform(self, X):
        return X


def test_data_is_described_before_fit_mutates_it(store):
    data = X.copy()
    truth = autotrack.fingerprint(data.copy())["hash"]
    tracked = Tracked(make_pipeline(_Doubler(), LogisticRegression(max_iter=300)), log_model=False).fit(data, y)
    assert np.allclose(data, X * 2)  # it was mutated
    assert autotrack.get_run(tracked.run_id_).info("data")["train"]["hash"] == truth


# -- max_child_runs keeps the best ----------------------------------------------------------------


def test_max_child_runs_keeps_the_best_candidates_by_rank(store):
    grid = {"C": [1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0]}
    tracked = Tracked(GridSearchCV(LogisticRegression(max_iter=500), grid, cv=3), max_child_runs=2,
                      log_model=False).fit(X, y)
    results = tracked.estimator_.cv_results_
    best_two = sorted(np.argsort(results["rank_test_score"], kind="stable")[:2].tolist())
    children = [autotrack.get_run(c.id if hasattr(c, "id") else c) for c in autotrack.get_run(tracked.run_id_).children]
    assert sorted(int(c.tags["autotrack.candidate"]) for c in children) == best_two
    assert sorted(c.params["C"] for c in children) == sorted(grid["C"][i] for i in best_two)
    assert best_two != [0, 1]  # the first two are the worst here: keeping "the first N" would fail


# -- threads ---------------------------------------------------------------------------------------


def test_searches_in_parallel_threads_are_not_children_of_each_other(autologged):
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    runs = _all_runs()
    searches = [r for r in runs if r.tags.get("estimator", "").endswith("GridSearchCV")]
    assert len(searches) == 4 and all(r.parent_id is None for r in searches)
    ids = {r.id for r in searches}
    children = [r for r in runs if r not in searches]
    assert len(children) == 8 and all(r.parent_id in ids for r in children)


# -- issue 15 ----------------------------------------------------------------------------------------


def test_halving_random_search_makes_one_search_run_and_no_empty_wrapper(autologged):
    search = HalvingRandomSearchCV(LogisticRegression(max_iter=300), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=2,
                                   factor=2, random_state=0).fit(X, y)
    runs = _all_runs()
    (top,) = [r for r in runs if r.parent_id is None]
    assert top.tags["estimator"].endswith("HalvingRandomSearchCV") and "autotrack.group" not in top.tags
    assert top.summary["cv/best_score"] == pytest.approx(search.best_score_)
    assert len(runs) == 1 + len(search.cv_results_["params"])


def test_standalone_transformers_store_no_model_under_autolog(store):
    autolog()
    try:
        MinMaxScaler().fit_transform(X)
        PCA(n_components=2).fit_transform(X)
        make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    finally:
        autolog(disable=True)
    runs = {r.tags["estimator"].rsplit(".", 1)[-1]: r for r in _all_runs()}
    assert runs["MinMaxScaler"].artifacts == [] and runs["PCA"].artifacts == []
    assert [a.kind for a in runs["Pipeline"].artifacts if a.kind != "report"] == ["model"]


def test_default_run_names_come_from_the_estimator_and_the_data_shape(autologged):
    RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    Tracked(Ridge(), log_model=False).fit(X[:100], y[:100])
    assert sorted(r.name for r in _all_runs()) == ["RandomForestClassifier-150x4", "Ridge-100x4"]


def test_autolog_then_importing_the_integration_first_keeps_autologging_on(tmp_path):
    script = (
        "import autotrack\n"
        "autotrack.autolog(system_metrics=False, seeds=False, log_models=False)\n"
        "from autotrack.integrations.sklearn import Tracked\n"  # imports sklearn: the hook fires mid-import
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.datasets import load_iris\n"
        "X, y = load_iris(return_X_y=True)\n"
        "LogisticRegression(max_iter=300).fit(X, y)\n"
        "autotrack.flush()\n"
        "print(len(autotrack.runs()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(tmp_path / "store"), "AUTOTRACK_CAPTURE": "0"}
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", script], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_the_integration_imports_no_private_core_module():
    import ast

    package = Path(at_sklearn.__file__).parent
    for path in [*package.glob("*.py"), package.parent / "xgboost.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("autotrack."):
                    parts = name.split(".")
                    assert not any(p.startswith("_") for p in parts[1:2]), (path.name, name)


def test_warnings_from_our_metrics_never_reach_the_user(autologged):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ridge().fit(X[:5], y[:5])  # r2 on few samples etc.
    assert len(_all_runs()) == 1


def test_module_level_script_groups_curves_and_makes_no_empty_search_wrapper(tmp_path):
    """The shape of the examples: everything at a script's top level (no enclosing function)."""
    script = (
        "import autotrack\n"
        "autotrack.autolog(log_models=False, system_metrics=False, seeds=False)\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.experimental import enable_halving_search_cv\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import HalvingRandomSearchCV, learning_curve\n"
        "X, y = load_iris(return_X_y=True)\n"
        "learning_curve(LogisticRegression(max_iter=300), X, y, cv=2, train_sizes=[0.5, 1.0])\n"
        "s = HalvingRandomSearchCV(LogisticRegression(max_iter=300), {'C': [0.1, 1.0, 10.0, 100.0]}, cv=2,\n"
        "                          factor=2, random_state=0).fit(X, y)\n"
        "autotrack.flush()\n"
        "t = autotrack.runs()\n"
        "top = t[t['parent_id'].isna()]\n"
        "print(len(t), sorted(top['name']), len(s.cv_results_['params']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(tmp_path / "store"), "AUTOTRACK_CAPTURE": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    total, rest = done.stdout.split(" ", 1)
    names, candidates = rest.rsplit(" ", 1)
    assert names == "['HalvingRandomSearchCV-150x4', 'learning_curve-LogisticRegression']"
    assert int(total) == 2 + 4 + int(candidates)  # the groups, 4 curve fits, one child per candidate
