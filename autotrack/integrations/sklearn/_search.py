"""Search CVs (``GridSearchCV``, ``RandomizedSearchCV``, the halving searches): ``best.*`` params,
``cv/best_score``, and one child run per candidate."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

import autotrack

from ._describe import plain
from ._settings import INTEGRATION, Settings


def is_search(est: Any) -> bool:
    return hasattr(est, "cv_results_") and (hasattr(est, "best_params_") or type(est).__name__.endswith("SearchCV"))


def rank_key(results: Mapping[str, Any], search: Any) -> str | None:
    """The ``rank_test_*`` column that orders candidates (lower is better): the refit metric's
    when several are scored."""
    refit = getattr(search, "refit", None)
    for key in (f"rank_test_{refit}" if isinstance(refit, str) else None, "rank_test_score"):
        if key is not None and key in results:
            return key
    return next((k for k in results if k.startswith("rank_test_")), None)


def chosen_candidates(results: Mapping[str, Any], search: Any, cap: int | None) -> list[int]:
    """Indices of the candidates that get a child run: all of them, or with a cap the ``cap`` best
    by rank (ties: in the search's order), listed in the search's order."""
    n = len(results["params"])
    if cap is None or cap >= n:
        return list(range(n))
    key = rank_key(results, search)
    if key is None:
        return list(range(int(cap)))
    ranks = np.asarray(results[key], dtype=float)
    order = sorted(range(n), key=lambda i: (ranks[i] if np.isfinite(ranks[i]) else np.inf, i))
    return sorted(order[: int(cap)])


def log_search(parent: autotrack.Run, search: Any, settings: Settings) -> None:
    best_params = getattr(search, "best_params_", None)
    if isinstance(best_params, Mapping):
        parent.log_params({"best": {k: plain(v) for k, v in best_params.items()}})
    best_score = getattr(search, "best_score_", None)
    if best_score is not None:
        parent.log_metric("cv/best_score", best_score, step=0)
    results = search.cv_results_
    candidates = list(results["params"])
    chosen = chosen_candidates(results, search, settings.max_child_runs)
    parent.set_tags({"autotrack.candidates": len(candidates), "autotrack.candidate_runs": len(chosen)})
    summary_keys = [k for k in results if k.startswith(("mean_", "std_", "rank_"))]
    split_keys: dict[str, list[tuple[int, str]]] = {}
    for key in results:
        if key.startswith("split") and "_" in key:
            head, rest = key.split("_", 1)
            if head[5:].isdigit():
                split_keys.setdefault(rest, []).append((int(head[5:]), key))
    scores = results.get("mean_test_score")
    for i in chosen:
        # a candidate whose fits all failed (error_score=nan) has no mean test score
        failed = scores is not None and not np.isfinite(np.ma.filled(np.asarray(scores, dtype=float)[i], np.nan))
        child = autotrack.start_run(
            f"{parent.name}-candidate-{i}", experiment=parent.experiment, parent=parent, activate=False,
            params={k: plain(v) for k, v in candidates[i].items()},
            # `trial` and `state` as on an Optuna study's trials: one reader for both kinds of search
            tags={"autotrack.candidate": i, "trial": i, "state": "fail" if failed else "complete",
                  "autotrack.integration": INTEGRATION},
        )
        try:
            now = time.time()
            for key in summary_keys:
                value = results[key][i]
                if value is not np.ma.masked:
                    child.log_metric(f"cv/{key}", value, step=0, time=now)
            for rest, keys in split_keys.items():
                for split, key in keys:
                    value = results[key][i]
                    if value is not np.ma.masked:
                        child.log_metric(f"cv/split_{rest}", value, step=split, time=now)
        finally:
            child.end("finished")
