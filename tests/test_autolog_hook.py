"""autolog()'s post-import hook and patch safety, with a stand-in framework written to tmp_path
(the real frameworks are exercised end to end in integrations/)."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest

import autotrack
from autotrack.integrations.base import register_integration, unregister_integration
from autotrack._patching import patch, patched, unpatch

FRAMEWORK = '''
calls = []
class Estimator:
    def fit(self, x):
        if x < 0:
            raise ValueError("x must be >= 0")  # the framework's own error
        calls.append(x)
        return x * 2
'''
INTEGRATION = '''
import fakefw
from autotrack._patching import patch, unpatch
enabled = []
def autolog(disable=False, log_models=True):
    if disable:
        unpatch("fakefw")
        enabled.append("off")
        return
    enabled.append(log_models)
    def fit(original, self, x):
        result = original(self, x)
        fakefw.calls.append(("recorded", x))
        return result
    patch("fakefw", fakefw.Estimator, "fit", fit)
'''


@pytest.fixture
def fake_framework(tmp_path, monkeypatch):
    (tmp_path / "fakefw.py").write_text(textwrap.dedent(FRAMEWORK))
    (tmp_path / "fakefw_integration.py").write_text(textwrap.dedent(INTEGRATION))
    monkeypatch.syspath_prepend(str(tmp_path))
    register_integration("fakefw", modules=("fakefw",), autolog="fakefw_integration:autolog",
                         options=("disable", "log_models"))
    yield
    autotrack.autolog(disable=True)
    unregister_integration("fakefw")
    for name in ("fakefw", "fakefw_integration"):
        sys.modules.pop(name, None)


def test_autolog_waits_for_the_import_and_never_imports_itself(fake_framework):
    autotrack.autolog(log_models=False)
    assert "fakefw" not in sys.modules and "fakefw_integration" not in sys.modules
    import fakefw  # noqa: PLC0415 - the import under test

    integration = sys.modules["fakefw_integration"]
    assert integration.enabled == [False]
    assert fakefw.Estimator().fit(3) == 6
    assert fakefw.calls == [3, ("recorded", 3)]
    assert fakefw.__spec__.loader.__class__.__name__ != "_NotifyingLoader"  # the real loader is back


def test_disable_undoes_every_patch(fake_framework):
    import fakefw  # noqa: PLC0415

    original = fakefw.Estimator.fit
    autotrack.autolog()
    assert fakefw.Estimator.fit is not original
    autotrack.autolog(disable=True)
    assert fakefw.Estimator.fit is original and patched("fakefw") == []
    from autotrack import _imports

    assert _imports._finder not in sys.meta_path


def test_env_disable_turns_autolog_off(fake_framework, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_DISABLE", "1")
    autotrack.autolog()
    import fakefw  # noqa: PLC0415

    assert "fakefw_integration" not in sys.modules
    assert fakefw.Estimator().fit(1) == 2


def test_bad_options_are_clear_errors():
    with pytest.raises(autotrack.InvalidArgumentError, match="grad_norm_every"):
        autotrack.autolog(grad_norm_every=0)
    with pytest.raises(autotrack.InvalidArgumentError, match="system_metrics"):
        autotrack.autolog(system_metrics=-1)


class Target:
    def work(self, x):
        if x == "boom":
            raise KeyError("framework error")
        return x + 1


def test_patch_passes_framework_errors_through_untouched():
    def replacement(original, self, x):
        return original(self, x)

    patch("test", Target, "work", replacement)
    try:
        with pytest.raises(KeyError, match="framework error") as info:
            Target().work("boom")
        assert info.traceback[-1].name == "work"  # raised where the framework raised it
    finally:
        unpatch("test")


def test_unpatch_leaves_a_value_someone_set_after_the_patch():
    """Undoing a patch restores the original only where the patch is still in place: a value
    assigned after it (the user's, a test's monkeypatch since undone) is not overwritten with
    what was there before."""
    import types

    module = types.SimpleNamespace(score=lambda: "original")
    patch("test", module, "score", lambda original: original() + "+patched")
    assert module.score() == "original+patched"
    module.score = theirs = lambda: "theirs"
    patch("test", Target, "work", lambda original, self, x: original(self, x))
    assert unpatch("test") == 2
    assert module.score is theirs  # not put back to "original"
    assert Target().work(1) == 2 and not hasattr(Target.__dict__["work"], "__autotrack_patch__")


def test_patches_of_two_integrations_on_one_attribute_undo_in_any_order():
    """Two integrations wrap the same method (scikit-learn's post-training link and XGBoost's
    plots both wrap ``XGBClassifier.fit``): undoing the inner one first leaves the outer one
    working and the inner one doing nothing; undoing both restores the original."""
    original = Target.__dict__["work"]
    calls = []

    def tracer(tag):
        def replacement(fn, self, x):
            calls.append(tag)
            return fn(self, x)
        return replacement

    patch("inner", Target, "work", tracer("inner"))
    patch("outer", Target, "work", tracer("outer"))
    assert Target().work(1) == 2 and calls == ["outer", "inner"]
    unpatch("inner")
    calls.clear()
    assert Target().work(1) == 2 and calls == ["outer"]  # the inner wrapper passes calls through
    patch("inner", Target, "work", tracer("inner"))  # enabled again: on top, recorded once
    calls.clear()
    assert Target().work(1) == 2 and calls == ["inner", "outer"]
    unpatch("inner")
    unpatch("outer")
    assert Target.__dict__["work"] is original


@pytest.mark.parametrize("when", ["before", "after"])
def test_patch_turns_own_failures_into_one_warning(monkeypatch, when):
    monkeypatch.delenv("AUTOTRACK_STRICT")
    from autotrack import _patching

    _patching._warned.clear()

    def replacement(original, self, x):
        if when == "before":
            raise RuntimeError("autotrack bug")
        original(self, x)
        raise RuntimeError("autotrack bug")

    patch("test", Target, "work", replacement)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [Target().work(1), Target().work(2)] == [2, 3]  # the user's call still runs, once
        assert len(caught) == 1 and "autotrack bug" in str(caught[0].message)
    finally:
        unpatch("test")


def test_strict_mode_raises_own_failures(monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "1")

    def replacement(original, self, x):
        raise RuntimeError("autotrack bug")

    patch("test", Target, "work", replacement)
    try:
        with pytest.raises(RuntimeError, match="autotrack bug"):
            Target().work(1)
    finally:
        unpatch("test")
    assert Target.work.__name__ == "work" and "work" in Target.__dict__
