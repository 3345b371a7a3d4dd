"""The :class:`Tracked` meta-estimator: each ``fit`` of the wrapped estimator is one run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

import autotrack
from autotrack.integrations.base import disabled, recording

from . import _grouping, _post_training
from ._record import record
from ._settings import INTEGRATION, Settings, check_settings


def _estimator_has(attr: str) -> Callable[[Any], bool]:
    def check(self: Tracked) -> bool:
        getattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attr)
        return True

    return check


class Tracked(MetaEstimatorMixin, BaseEstimator):
    """Wrap an estimator so that each ``fit`` is recorded as one autotrack run.

    Scikit-learn cannot tell it from the estimator it wraps: it has the same methods (delegated
    with ``available_if``), the same tags, and fits a clone in ``estimator_``.

    Parameters
    ----------
    estimator : the estimator to fit and record (cloned by ``fit``).
    run_name, experiment, tags : the run's name (generated when None), experiment and extra tags.
    log_model : store the fitted estimator as an artifact of kind ``model`` (skops).
    log_metrics : compute task metrics on the training data (and on ``eval_set``) after fit.
    log_data : record shape, dtypes, feature names and fingerprint of X and y (section ``data``).
    eval_set : ``(X_val, y_val)``: the same metrics on it under ``val/``.
    max_child_runs : for a search CV, record at most this many candidates as child runs
        (None: all).
    log_input_examples : store the first 5 training rows with the model (its ``input_example``,
        secret filter applied); the model's signature is stored either way.
    register_as : a model name: after each fit, register the stored model as the next version of
        that model (``autotrack.register_model``); the version is in ``model_version_``.

    Attributes
    ----------
    estimator_ : the fitted clone.
    run_id_ : id of the run of the last fit (None when the fit was nested in a recorded fit).
    model_version_ : the :class:`autotrack.ModelVersion` registered by the last fit (``register_as``).
    """

    def __init__(self, estimator: Any, *, run_name: str | None = None, experiment: str | None = None,
                 tags: Mapping[str, Any] | None = None, log_model: bool = True, log_metrics: bool = True,
                 log_data: bool = True, eval_set: Any = None, max_child_runs: int | None = None,
                 register_as: str | None = None, log_input_examples: bool = True) -> None:
        self.estimator = estimator
        self.run_name = run_name
        self.experiment = experiment
        self.tags = tags
        self.log_model = log_model
        self.log_metrics = log_metrics
        self.log_data = log_data
        self.eval_set = eval_set
        self.max_child_runs = max_child_runs
        self.register_as = register_as
        self.log_input_examples = log_input_examples

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Tracked:
        """Fit a clone of ``estimator`` on ``X, y`` (``fit_params`` passed through) and record it."""
        self._fit("fit", X, y, fit_params)
        return self

    @available_if(_estimator_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._fit("fit_transform", X, y, fit_params)

    @available_if(_estimator_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._fit("fit_predict", X, y, fit_params)

    @available_if(_estimator_has("partial_fit"))
    def partial_fit(self, X: Any, y: Any = None, **fit_params: Any) -> Tracked:
        """Delegated without recording (a run per batch would flood the store)."""
        if not hasattr(self, "estimator_"):
            self.estimator_ = clone(self.estimator)
            self.run_id_ = None
        self.estimator_.partial_fit(X, y, **fit_params)
        return self

    def _fit(self, method: str, X: Any, y: Any, fit_params: dict[str, Any]) -> Any:
        settings = Settings(self.run_name, self.experiment, self.tags, self.log_model, self.log_metrics,
                            self.log_data, self.eval_set, self.max_child_runs,
                            log_input_examples=self.log_input_examples)
        check_settings(settings)
        if self.register_as is not None and (not isinstance(self.register_as, str) or not self.log_model):
            raise autotrack.InvalidArgumentError("register_as", self.register_as, "pass a model name (str) with "
                                                 "log_model=True, or None not to register")
        if not disabled() and not _grouping.groups_installed():
            _grouping.install_groups(searches=True)  # so that cross_validate(Tracked(...)) is one group
        self.estimator_ = clone(self.estimator)
        fitted = getattr(self.estimator_, method)
        result, run, _ = record(self.estimator_, lambda: fitted(X, y, **fit_params), X, y, settings,
                                 explicit=True, sample_weight=fit_params.get("sample_weight"))
        self.run_id_ = run.id if run is not None else None
        if run is not None and _post_training.enabled():
            _post_training.guarded_call(_post_training.ensure_metrics)  # sklearn.metrics calls are recorded
        if self.register_as is not None and run is not None:  # opt-in registration (model versioning)
            self.model_version_ = autotrack.register_model(self.register_as, run=run)
        return result

    # -- delegated methods ------------------------------------------------------------------

    @available_if(_estimator_has("predict"))
    def predict(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self._predicted(X, self.estimator_.predict, kwargs)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self._predicted(X, self.estimator_.predict_proba, kwargs)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X, **kwargs)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self._predicted(X, self.estimator_.decision_function, kwargs)

    @available_if(_estimator_has("score_samples"))
    def score_samples(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.score_samples(X, **kwargs)

    @available_if(_estimator_has("transform"))
    def transform(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.transform(X, **kwargs)

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.inverse_transform(X, **kwargs)

    @available_if(_estimator_has("score"))
    def score(self, X: Any, y: Any = None, **kwargs: Any) -> float:
        """The inner estimator's score; on data other than the training data it is also
        recorded in the fit's run as ``<dataset>/score`` (``test/score``, ``test_1/score`` for
        other data; see post-training metrics). Recorded when user code calls it, and for a fold
        of a model-selection function (``cross_validate(Tracked(...))``: its held-out score)."""
        check_is_fitted(self)
        with recording(INTEGRATION):  # what the inner score calls is not the user's
            value = self.estimator_.score(X, y, **kwargs)
        user = _grouping.called_from_user_code() or _grouping.current_group() is not None
        _post_training.guarded_call(_post_training.scored, self.estimator_, X, value, user=user)
        return value

    def _predicted(self, X: Any, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with recording(INTEGRATION):  # the inner estimator's own (autolog) patch stays out
            output = method(X, **kwargs)
        user = _grouping.called_from_user_code()
        _post_training.guarded_call(_post_training.predicted, self.estimator_, X, output, user=user)
        return output

    @available_if(_estimator_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        check_is_fitted(self)
        return self.estimator_.get_feature_names_out(input_features)

    @available_if(_estimator_has("set_output"))
    def set_output(self, *, transform: str | None = None) -> Tracked:
        self.estimator.set_output(transform=transform)
        if hasattr(self, "estimator_"):
            self.estimator_.set_output(transform=transform)
        return self

    # -- delegated attributes ---------------------------------------------------------------

    @property
    def classes_(self) -> Any:
        return self.estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self) -> Any:
        return self.estimator_.feature_names_in_

    # -- sklearn protocol -------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")

    def __sklearn_tags__(self) -> Any:
        tags = deepcopy(get_tags(self.estimator))
        tags.array_api_support = False  # the recorded metrics are computed with numpy
        return tags

    def _sk_visual_block_(self) -> Any:
        try:  # scikit-learn 1.7+
            from sklearn.utils._repr_html.estimator import _VisualBlock
        except ImportError:  # 1.6, the declared floor
            from sklearn.utils._estimator_html_repr import _VisualBlock

        inner = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return _VisualBlock("serial", [inner], names=[f"estimator: {type(inner).__name__}"],
                            name_details=[str(inner)], dash_wrapped=True)
