"""The post-import hooks (``when_submodules_imported``) and the faster ``packages_distributions``."""

from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap

import pytest

from autotrack._capture.environment import packages_distributions
from autotrack.integrations.base import cancel_submodules, when_submodules_imported


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    root = tmp_path / "fakepkg_hooks"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("VALUE = 1\n")
    (root / "first.py").write_text("class Thing:\n    pass\nTHING_DONE = True\n")
    (root / "sub" / "__init__.py").write_text("from . import deep\n")
    (root / "sub" / "deep.py").write_text(textwrap.dedent("""\
        class Deep:
            pass
        Deep.added_after = 'yes'
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakepkg_hooks"
    for name in [m for m in sys.modules if m.split(".")[0] == "fakepkg_hooks"]:
        del sys.modules[name]


def test_submodule_hook_sees_each_submodule_after_it_has_executed(fake_package):
    import fakepkg_hooks  # the package itself is imported before watching starts

    seen: list[tuple[str, dict[str, object]]] = []

    def callback(module):
        seen.append((module.__name__, dict(vars(module))))

    when_submodules_imported(fake_package, callback)
    try:
        import fakepkg_hooks.first
        import fakepkg_hooks.sub
    finally:
        cancel_submodules(fake_package, callback)
    names = [name for name, _ in seen]
    assert names == ["fakepkg_hooks.first", "fakepkg_hooks.sub.deep", "fakepkg_hooks.sub"]
    first = dict(seen)["fakepkg_hooks.first"]
    assert first["THING_DONE"] is True  # the whole module had run, not only the class statement
    assert dict(seen)["fakepkg_hooks.sub.deep"]["Deep"].added_after == "yes"
    assert fakepkg_hooks.VALUE == 1
    assert fakepkg_hooks.first.__spec__.loader.__class__.__name__ != "_NotifyingLoader"


def test_cancelled_submodule_hook_is_not_called_and_leaves_meta_path(fake_package):
    calls: list[str] = []

    def callback(module):
        calls.append(module.__name__)

    before = list(sys.meta_path)
    when_submodules_imported(fake_package, callback)
    cancel_submodules(fake_package, callback)
    import fakepkg_hooks.first

    assert fakepkg_hooks.first.THING_DONE is True
    assert calls == []
    assert sys.meta_path == before


def test_submodule_hook_takes_a_top_level_name():
    with pytest.raises(ValueError, match="top-level package"):
        when_submodules_imported("sklearn.linear_model", lambda module: None)


def test_packages_distributions_matches_importlib():
    ours = {top: sorted(names) for top, names in packages_distributions().items()}
    truth = {top: sorted(names) for top, names in md.packages_distributions().items()}
    assert ours == truth
    assert ours  # this environment has installed distributions
