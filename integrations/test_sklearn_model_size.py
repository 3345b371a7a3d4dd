"""Stored scikit-learn models (issue 22): a search stores its ``best_estimator_`` and a plain fit
the estimator itself -- the size of the user's own ``skops.io.dumps`` of the same object, never
the search with its ``cv_results_`` or data -- and the stored file loads back and predicts the
same through the public loader."""

from __future__ import annotations

import os

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import autotrack
from autotrack.integrations.sklearn import Tracked, autolog, load_model

skops_io = pytest.importorskip("skops.io")

rng = np.random.default_rng(0)
X = rng.normal(size=(1000, 100))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
GRID = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}


def _model_artifact(run_id: str):
    autotrack.flush()
    (artifact,) = [a for a in autotrack.get_run(run_id).artifacts if a.kind == "model"]
    return artifact


def _top_run_id() -> str:
    autotrack.flush()
    runs = autotrack.runs()
    return runs[runs["parent_id"].isna()]["id"].iloc[0]


def _check(run_id: str, expected_object, fitted) -> None:
    artifact = _model_artifact(run_id)
    own = len(skops_io.dumps(expected_object))
    whole = len(skops_io.dumps(fitted))
    assert artifact.name == "model.skops"
    assert own / 1.5 <= artifact.size <= own * 1.5, (artifact.size, own)
    if fitted is not expected_object:  # a search: the whole of it is far larger than its best estimator
        assert whole > 3 * own
    loaded = load_model(run_id)
    assert type(loaded) is type(expected_object)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_autologged_search_stores_only_its_best_estimator(store):
    autolog()
    try:
        search = GridSearchCV(LogisticRegression(max_iter=300), GRID, cv=3).fit(X, y)
    finally:
        autolog(disable=True)
    _check(_top_run_id(), search.best_estimator_, search)


def test_tracked_search_stores_only_its_best_estimator(store):
    tracked = Tracked(GridSearchCV(LogisticRegression(max_iter=300), GRID, cv=3)).fit(X, y)
    search = tracked.estimator_
    _check(tracked.run_id_, search.best_estimator_, search)


def test_plain_estimator_stores_the_estimator_itself(store):
    autolog()
    try:
        model = LogisticRegression(max_iter=300).fit(X, y)
    finally:
        autolog(disable=True)
    _check(_top_run_id(), model, model)
