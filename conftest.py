from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotrack._store import Store

os.environ.setdefault("AUTOTRACK_STRICT", "1")
# Start-of-run capture and the system sampler are tested in their own files (which turn them on);
# everywhere else they would only slow hundreds of test runs down.
os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store folder for one test; every run the test leaves open is ended afterwards."""
    import autotrack
    from autotrack import _run

    previous = _run._store_override
    st = autotrack.set_store(tmp_path / "store")
    yield st
    while (run := autotrack.active_run()) is not None:
        run.end()
    autotrack.flush()
    _run._store_override = previous
    # the test's writer threads stop with it: hundreds of idle writers, each waking every 0.25 s,
    # slowed the rest of the suite (93 % system time by its end)
    from autotrack import _recorder

    for rec in _recorder.all_recorders():
        if str(getattr(rec.backend, "location", "")).startswith(str(tmp_path)):
            rec.close(timeout=5.0)
