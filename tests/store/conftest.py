"""The store contract suite runs every test against every backend: the same tests, not a copy per
backend. ``backend_location`` yields where a fresh, empty store lives; PostgreSQL joins the
parametrisation when its server fixture can start one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def backend_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store")
    else:  # pragma: no cover - other backends register their own fixture
        yield request.getfixturevalue(f"{request.param}_location")


@pytest.fixture
def backend(backend_location: str) -> Iterator[object]:
    """A fresh store used for every run the test starts; runs left open are ended afterwards."""
    import autotrack
    from autotrack import _run

    previous = _run._store_override
    st = autotrack.set_store(backend_location)
    yield st
    while (run := autotrack.active_run()) is not None:
        run.end()
    autotrack.flush()
    _run._store_override = previous
