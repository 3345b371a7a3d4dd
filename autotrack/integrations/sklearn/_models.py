"""Model files: the fitted estimator as ``model.skops`` (``model.joblib`` when skops cannot write
it), and :func:`load_model` to read it back through each format's safe loader."""

from __future__ import annotations

import hashlib
import io
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

import sklearn

import autotrack
from autotrack.integrations.base import InvalidArgumentError, model_io

from ._describe import class_path


class _KeptOut:
    """A ``sys.meta_path`` entry that, in the thread importing skops, refuses scikit-learn's test
    packages and its array-API shims of frameworks this process has not imported."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        """Refuse a kept-out module; for any other, None (the next finder finds it)."""
        if threading.get_ident() == self.thread and name.startswith("sklearn."):
            parts = name.split(".")
            shim = parts[1:3] == ["externals", "array_api_compat"] and len(parts) > 3 and parts[3] not in sys.modules
            if "tests" in parts or (shim and parts[3] not in ("common", "numpy")):
                raise ImportError(f"autotrack keeps {name} out while skops.io is imported")


_skops_lock = threading.Lock()


def skops_io() -> ModuleType:
    """``skops.io``, imported on first use (a model saved or loaded), never at start-up.

    Importing it runs scikit-learn's ``all_estimators()`` (skops' list of trusted types), which
    walks every scikit-learn package: that imports its 53 ``tests`` packages and
    ``sklearn.externals.array_api_compat.torch``, and so torch, into a pure scikit-learn script.
    ``all_estimators()`` skips the ``tests`` and ``externals`` modules anyway; the walk imports the
    packages only to look inside them, and passes over one that cannot be imported. So while
    skops.io is imported, this thread is refused exactly those: skops' trusted types are the same
    (``integrations/test_startup.py`` compares them with an unguarded import), and torch, the test
    packages and the shims of frameworks not imported stay out of ``sys.modules``."""
    module = sys.modules.get("skops.io")
    if module is not None:
        return module
    with _skops_lock:
        guard = _KeptOut()
        sys.meta_path.insert(0, guard)
        try:
            import skops.io as sio
        finally:
            sys.meta_path.remove(guard)
    return sio


def log_model(run: autotrack.Run, model: Any, X: Any = None, log_example: bool = True) -> None:
    """Store the fitted ``model``, with its signature from the training data ``X`` (and the first
    rows of ``X`` as its input example when ``log_example``)."""
    meta: dict[str, Any] = {"class": class_path(model), "sklearn_version": sklearn.__version__}
    if X is not None:
        method = next((getattr(model, m) for m in ("predict", "transform") if hasattr(model, m)), None)
        meta.update(model_io(X, method, log_example=log_example, where="sklearn: model signature"))
    data, name, problem = None, None, None
    try:
        sio = skops_io()
        import skops

        data = sio.dumps(model)
        untrusted = list(sio.get_untrusted_types(data=data))
        unloadable = [t for t in untrusted if "<lambda>" in t or "<locals>" in t]
        if unloadable:  # skops writes these, but cannot import them back
            problem, data = f"skops cannot load {unloadable}", None
        else:
            meta.update(format="skops", skops_version=skops.__version__, safe_to_load=True, untrusted_types=untrusted)
            name = "model.skops"
    except Exception as exc:  # noqa: BLE001 - skops missing, or a type it cannot write
        problem = f"skops: {type(exc).__name__}: {exc}"[:500]
    if data is None:
        try:
            import joblib

            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            data = buffer.getvalue()
            meta.update(format="joblib", safe_to_load=False, skops_error=problem)
            name = "model.joblib"
        except Exception as exc:  # noqa: BLE001 - e.g. a lambda: the user's model cannot be serialised
            reason = f"{problem}; joblib: {type(exc).__name__}: {exc}"[:500]
            run.set_tags({"autotrack.model_not_saved": reason})
            warnings.warn(f"autotrack: the fitted {type(model).__name__} could not be stored ({reason}); "
                          "the run has everything else.", RuntimeWarning, stacklevel=2)
            return
    run.log_bytes(data, name, kind="model", metadata=meta)


def load_model(run_id: str, *, trusted: list[str] | None = None, allow_pickle: bool = False,
               name: str | None = None) -> Any:
    """Load the model stored by a run (its newest artifact of kind ``model``, or ``name``).

    A ``skops`` file is loaded with skops' check of untrusted types: any type outside skops' safe
    defaults must be listed in ``trusted`` (review them first), else an error lists them. A
    ``joblib`` file is a pickle, which can run arbitrary code: it is loaded only with
    ``allow_pickle=True``.
    """
    record = autotrack.get_run(run_id)
    models = [a for a in record.artifacts if a.kind == "model" and not a.deleted and (name is None or a.name == name)]
    if not models:
        raise InvalidArgumentError(
            "run_id", run_id, "this run stored no model artifact; fit with Tracked(..., log_model=True) or autolog()"
        )
    artifact = models[-1]
    data = record.read_artifact(artifact.name)  # through the store: a local folder or a bucket, verified
    if artifact.sha256 and hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise InvalidArgumentError("run_id", run_id, f"the stored bytes of {artifact.name} do not match their sha256")
    fmt = artifact.metadata.get("format") or ("skops" if artifact.name.endswith(".skops") else "joblib")
    if fmt == "skops":
        sio = skops_io()
        untrusted = list(sio.get_untrusted_types(data=data))
        missing = [t for t in untrusted if t not in set(trusted or ())]
        if missing:
            raise InvalidArgumentError(
                "trusted", trusted,
                f"the model holds types skops does not trust by default: {missing}. Review them, then pass "
                f"trusted={missing!r}",
            )
        return sio.loads(data, trusted=untrusted)
    if not allow_pickle:
        raise InvalidArgumentError(
            "allow_pickle", allow_pickle,
            f"{artifact.name} is a pickle (joblib), which runs arbitrary code when loaded; pass "
            "allow_pickle=True only if you trust whoever wrote this store",
        )
    import joblib

    return joblib.load(io.BytesIO(data))
