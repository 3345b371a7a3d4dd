"""Which run a scikit-learn-API estimator's fit produced, when another integration records it.

``XGBClassifier.fit`` and ``LGBMRegressor.fit`` are recorded by the XGBoost and LightGBM
integrations through ``xgboost.train`` / ``lightgbm.train``, which never see the estimator. The
scikit-learn integration wraps those estimators' ``fit`` in :func:`fitting`; the training inside
reports its run with :func:`training_run`; the wrapper then knows the estimator -> run link that
post-training metrics need. Framework-free and context-local (a ``ContextVar``): a fit in another
thread has its own.
"""

from __future__ import annotations

import contextvars
from typing import Any


class Fitting:
    """One estimator's ``fit`` in progress and the run its training opened (None until then)."""

    __slots__ = ("estimator", "run")

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.run: Any = None


_current: contextvars.ContextVar[Fitting | None] = contextvars.ContextVar("autotrack_fitting", default=None)


def current() -> Fitting | None:
    return _current.get()


def begin(estimator: Any) -> contextvars.Token[Fitting | None]:
    return _current.set(Fitting(estimator))


def end(token: contextvars.Token[Fitting | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # reset in another context
        pass


def training_run(run: Any) -> None:
    """Called by an integration when a training opens ``run``: the fit in progress in this context
    (if any) produced it. The first training of a fit is the one that counts."""
    fitting = _current.get()
    if fitting is not None and fitting.run is None:
        fitting.run = run
