"""Which fits become runs, decided from context-local state and patched entry points (no frames
are read for grouping, nothing is written into anyone's frame).

* A fit made while another fit is being recorded in the same context (a pipeline's steps, a
  search's candidates and refit, a meta-estimator's inner estimators, a user subclass's
  ``super().fit``) makes no run of its own: base's ``recording`` flag, a ``ContextVar``, so a
  thread (or task) never sees another one's recording.
* scikit-learn's model-selection functions (``cross_validate``, ``cross_val_score``,
  ``cross_val_predict``, ``permutation_test_score``, ``learning_curve`` -- and so
  ``LearningCurveDisplay`` --, ``validation_curve``) and a search's ``fit`` that is not itself
  recorded are patched at entry and exit: inside, a :class:`Group` is open in this context, and
  the fits recorded inside become children of one group run (tag ``autotrack.group``: the
  function's name), started with the first such fit and ended when the call returns.
* The run active in this context is the parent of a new run; a run this integration started in
  another thread is never taken as one.
"""

from __future__ import annotations

import contextvars
import os
import sys
import sysconfig
import threading
import weakref
from collections.abc import Callable, Collection
from typing import Any

import sklearn

import autotrack
from autotrack.integrations._wrapped import inner_slot
from autotrack.integrations.base import default_run_name, patch, patched, report_failure, unpatch

from ._describe import class_path
from ._settings import INTEGRATION, Settings

GROUPS = "sklearn_groups"  # the patch group of the entry points (Tracked needs them without autolog)
MODEL_SELECTION_FUNCTIONS = ("cross_validate", "cross_val_score", "cross_val_predict", "permutation_test_score",
                             "learning_curve", "validation_curve")


class Group:
    """One call of a model-selection function (or an unrecorded search fit) in progress."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.run: autotrack.Run | None = None
        self.lock = threading.Lock()

    def run_for(self, estimator: Any, settings: Settings) -> autotrack.Run:
        with self.lock:
            if self.run is None:
                parent = parent_run()
                name = settings.run_name or (default_run_name() if parent is None else None)
                self.run = autotrack.start_run(
                    name or f"{self.what}-{type(estimator).__name__}",
                    experiment=settings.experiment, parent=parent, activate=False,
                    tags={"autotrack.group": self.what, "autotrack.integration": INTEGRATION,
                          "estimator": class_path(estimator)},
                )
            return self.run

    def close(self, error: BaseException | None) -> None:
        run = self.run
        if run is None or run.ended:
            return
        if error is None:
            run.end("finished")
        else:
            run.end("killed" if isinstance(error, KeyboardInterrupt) else "failed", error=error)


_group: contextvars.ContextVar[Group | None] = contextvars.ContextVar("autotrack_sklearn_group", default=None)
_mine: contextvars.ContextVar[tuple[autotrack.Run, ...]] = contextvars.ContextVar("autotrack_sklearn_runs", default=())
_started: weakref.WeakSet[autotrack.Run] = weakref.WeakSet()  # every run this integration started


def current_group() -> Group | None:
    return _group.get()


def in_group(what: str, call: Callable[[], Any]) -> Any:
    """Run ``call`` inside a group (or inside the group already open in this context)."""
    if _group.get() is not None:
        return call()
    group = Group(what)
    token = _group.set(group)
    try:
        result = call()
    except BaseException as exc:
        _group.reset(token)
        _close(group, exc)
        raise
    _group.reset(token)
    _close(group, None)
    return result


def _close(group: Group, error: BaseException | None) -> None:
    try:
        group.close(error)
    except Exception as exc:  # noqa: BLE001 - the user's call has its result (or error) already
        report_failure("sklearn: ending a group run", exc)


def parent_run() -> autotrack.Run | None:
    """The parent of a run started now: the open group's run, else the run active in this
    context -- unless that is one this integration started in another context."""
    group = _group.get()
    if group is not None and group.run is not None and not group.run.ended:
        return group.run
    active = autotrack.active_run()
    if active is not None and active in _started and active not in _mine.get():
        return None
    return active


def started(run: autotrack.Run) -> contextvars.Token[tuple[autotrack.Run, ...]]:
    _started.add(run)
    return _mine.set((*_mine.get(), run))


def finished(token: contextvars.Token[tuple[autotrack.Run, ...]]) -> None:
    try:
        _mine.reset(token)
    except ValueError:  # ended in another context
        pass


# -- who called the fit ---------------------------------------------------------------------------

_OWN_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))) + os.sep
_kinds: dict[str, bool] = {}
_roots: tuple[str, ...] | None = None


def _library_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    for module in (sklearn, sys.modules.get("joblib")):
        if module is not None and getattr(module, "__file__", None):
            roots.add(os.path.dirname(os.path.realpath(module.__file__)))
    return tuple(sorted(r + os.sep for r in roots if r))


def _is_library(filename: str) -> bool:
    known = _kinds.get(filename)
    if known is None:
        global _roots
        if _roots is None:
            _roots = _library_roots()
        real = os.path.realpath(filename) if not filename.startswith("<") else filename
        parts = real.split(os.sep)
        known = _kinds[filename] = (filename.startswith("<frozen ") or real.startswith(_roots)
                                    or "site-packages" in parts or "dist-packages" in parts)
    return known


def is_library(filename: str) -> bool:
    """Whether code in ``filename`` is the standard library's, an installed package's or
    scikit-learn's (not the user's)."""
    return _is_library(filename)


def called_from_user_code(skip: Collection[Any] = ()) -> bool:
    """Whether the code that called the fit is the user's (not the standard library, an installed
    package or scikit-learn). Reads only the calling code's file name: the first frame outside
    autotrack (and outside the code objects in ``skip``: a decorator's wrapper); no locals, no
    writes."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename.startswith(_OWN_ROOT) or frame.f_code in skip):
        frame = frame.f_back
    return frame is not None and not _is_library(frame.f_code.co_filename)


# -- the entry points -------------------------------------------------------------------------------


def _grouped(what: str) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return in_group(what, lambda: original(*args, **kwargs))

    replacement.__name__ = f"autotrack_sklearn_group_{what}"
    return replacement


def search_fit_replacement(record: Callable[..., Any] | None) -> Callable[..., Any]:
    """A search's ``fit``: recorded (under autolog, ``record``) or else a group of what it fits."""

    def replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        if record is not None and (current_group() is not None or called_from_user_code()):
            return record(original, self, *args, **kwargs)
        return in_group(type(self).__name__, lambda: original(self, *args, **kwargs))

    replacement.__name__ = "autotrack_sklearn_search_fit"
    return replacement


def search_classes() -> list[type]:
    """The classes defining ``fit`` for scikit-learn's searches (found through the public search
    classes' MRO, not by importing private modules)."""
    from sklearn.model_selection import GridSearchCV

    owners = [next(k for k in GridSearchCV.__mro__ if "fit" in k.__dict__)]
    try:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        owners.append(next(k for k in HalvingGridSearchCV.__mro__ if "fit" in k.__dict__))
    except ImportError:  # pragma: no cover - a release without the halving searches
        pass
    return owners


def install_groups(*, searches: bool) -> None:
    """Patch the model-selection functions (once) and, when ``searches``, the searches' ``fit``
    as groups only (autolog patches those itself, to record them)."""
    import sklearn.model_selection as model_selection

    done = {id(owner) for owner, _ in patched(GROUPS)}
    for name in MODEL_SELECTION_FUNCTIONS:
        function = getattr(model_selection, name, None)
        slot = inner_slot(function) if function is not None else None
        if slot is not None:
            if id(slot) not in done:
                patch(GROUPS, slot, "func", _grouped(name))
        elif function is not None and id(model_selection) not in done:  # a release without the wrapper
            patch(GROUPS, model_selection, name, _grouped(name))
    if searches:
        for owner in search_classes():
            if id(owner) not in done:
                patch(GROUPS, owner, "fit", search_fit_replacement(None))


def groups_installed() -> bool:
    return bool(patched(GROUPS))


def uninstall_groups() -> None:
    unpatch(GROUPS)
