"""scikit-learn: the :class:`Tracked` meta-estimator and :func:`autolog`.

    from autotrack.integrations.sklearn import Tracked, autolog, load_model
    clf = Tracked(RandomForestClassifier(), experiment="churn").fit(X, y)   # one fit, one run
    autolog()                                                               # or: every user fit is a run

What one fit records (run id in ``Tracked.run_id_``; the run is named after the estimator and the
training data's shape, ``RandomForestClassifier-150x4``, unless ``run_name`` says otherwise):

* params: ``estimator.get_params(deep=True)`` (nested estimators as their class name; a key over
  500 characters is stored shortened, ending with its original length and a digest); tags
  ``estimator`` (class path), ``sklearn_version``, ``autotrack.integration=sklearn``;
* section ``model``: class, repr, structure (pipelines, column transformers, meta-estimators),
  ``n_features_in``, ``classes``; section ``data`` (described before the fit: a step may change
  ``X`` in place): entries ``train`` (X), ``train_y``, ``validation`` and ``validation_y`` (the
  ``eval_set``), each with type, shape, dtypes, feature names and the core's content ``hash``;
* metrics (``sklearn.metrics``), on the training data under ``train/`` and on ``eval_set`` under
  ``val/``: classifiers ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``,
  ``f1_macro``, ``precision_weighted``, ``recall_weighted``, ``f1_weighted``, and with
  ``predict_proba`` ``log_loss`` and ``roc_auc`` (one-vs-rest macro for several classes);
  regressors ``r2``, ``rmse``, ``mae``, ``mape``; clusterers ``inertia`` (when the estimator has
  ``inertia_``) and ``silhouette`` (exact up to 2,000 samples, else on a fixed sample of 2,000);
  ``train/fit_time`` (seconds) and ``train/n_iter``;
* iteration curves as step metrics (step = iteration, from 0): MLP ``loss_curve_`` ->
  ``train/loss`` and ``validation_scores_`` -> ``val/score``; GradientBoosting ``train_score_`` ->
  ``train/loss``; HistGradientBoosting ``train_score_`` -> ``train/score`` and
  ``validation_score_`` -> ``val/score``;
* the fitted estimator as an artifact of kind ``model`` (``model.skops``; ``model.joblib``, flagged
  ``safe_to_load: false``, when skops cannot serialise it); read it back with :func:`load_model`.
  Under :func:`autolog`, standalone transformers (a ``MinMaxScaler`` or ``PCA`` fitted on its own)
  store no model unless ``log_transformer_models=True``;
* searches (``GridSearchCV``, ``RandomizedSearchCV``, halving searches): params ``best.*``, metric
  ``cv/best_score``, and one child run per candidate (params of ``cv_results_["params"]``; metrics
  ``cv/mean_test_score``, ``cv/std_test_score``, ``cv/rank_test_score`` (lower is better: 1 is the
  best), ``cv/mean_fit_time``, ... and ``cv/split_test_score`` with step = split). With
  ``max_child_runs=N`` the N best candidates by ``rank_test_score`` get a child run (the refit
  metric's rank when several are scored; ties in the search's order);
* ``Tracked.score(X, y)`` on data other than the training data: ``test/score`` in the fit's run.

Not recorded: ``partial_fit`` (delegated; a run per batch would flood the store). Recording is
done piece by piece: a piece that fails (one metric, ``predict``, the model file, a param) is
named in the tag ``autotrack.recording_error`` and reported once (``AUTOTRACK_STRICT=1`` raises);
the fit returns normally and the other pieces are recorded. ``AUTOTRACK_DISABLE=1`` turns off
autolog's patches and makes ``Tracked`` a plain wrapper.

Which fits become runs:

1. A fit that starts while another fit is being recorded in the same thread or task (a
   pipeline's steps, a search's candidates and refit, a meta-estimator's inner estimators, the
   ``super().fit`` of a user's subclass) makes no run of its own; the outermost fit is recorded
   once it returns.
2. Fits inside ``cross_validate``, ``cross_val_score``, ``cross_val_predict``,
   ``permutation_test_score``, ``learning_curve`` (and ``LearningCurveDisplay``),
   ``validation_curve``, or a search's ``fit`` that is not itself recorded, are children of one
   group run per such call (tag ``autotrack.group``: the function's name), ended when it returns.
3. Otherwise, under :func:`autolog`, a fit called by user code makes a run and one called from
   inside another library (scikit-learn's own checks, an installed package) makes none. A
   :class:`Tracked` fit is explicit and always makes a run. Fits in ``n_jobs`` worker threads or
   processes are outside the caller's context: ``Tracked`` runs there are standalone runs.

Private scikit-learn details used (each guarded by a test in ``integrations/test_sklearn.py``
that fails clearly when a release changes it):

* ``sklearn.utils._available_if._AvailableIfDescriptor`` and its ``fn``: ``Pipeline.fit_transform``
  is patched inside its descriptor, so ``hasattr`` keeps telling the truth;
* the ``func`` closure cell of the ``validate_params`` wrapper of the model-selection functions:
  patched there so that names users imported before autolog are reached too (without it, the
  module attributes are patched);
* ``sklearn.utils._repr_html.estimator._VisualBlock`` (``sklearn.utils._estimator_html_repr`` on 1.6):
  ``Tracked``'s HTML repr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import load_model
    from ._tracked import Tracked


def autolog(*, disable: bool = False, log_models: bool = True, log_metrics: bool = True, log_data: bool = True,
            max_child_runs: int | None = None, experiment: str | None = None, run_name: str | None = None,
            log_transformer_models: bool = False, **other_options: Any) -> None:
    """Record every scikit-learn fit that user code makes, as if the estimator were ``Tracked``.

    Which fits become runs: see this module's docstring. ``max_child_runs=N`` keeps the N best
    search candidates by ``rank_test_score``. ``autolog(disable=True)`` undoes every patch.
    Options of other integrations (``log_every_n_steps``, ``grad_norm_every``) are accepted and
    ignored. Defined before anything imports scikit-learn: ``autotrack.autolog()``'s import hook may
    call it while this package is still being imported.
    """
    from ._autolog import autolog as _autolog

    _autolog(disable=disable, log_models=log_models, log_metrics=log_metrics, log_data=log_data,
             max_child_runs=max_child_runs, experiment=experiment, run_name=run_name,
             log_transformer_models=log_transformer_models, **other_options)


def __getattr__(name: str) -> Any:
    """``Tracked`` and ``load_model`` are imported on first use: autolog's import hook enables this
    integration in every script that imports scikit-learn (XGBoost does), and what they need
    (``sklearn.metrics``, the recording code) is not part of a script's start-up."""
    if name == "Tracked":
        from ._tracked import Tracked as value
    elif name == "load_model":
        from ._models import load_model as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["Tracked", "autolog", "load_model"]
