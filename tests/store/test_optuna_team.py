"""A distributed Optuna study on the team store: four worker processes share one Optuna RDB
storage and one autotrack store, both on the real PostgreSQL of the team-store tests, and write
one parent run with every trial once, in its final state."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("sqlalchemy")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integrations"))
from test_optuna import check_workers, run_workers  # noqa: E402


def test_four_workers_on_postgresql_write_one_parent_and_every_trial_once(pg_server, postgres_location):
    storage = pg_server.new_database().replace("postgresql://", "postgresql+psycopg://", 1)
    run_workers(storage, postgres_location)
    check_workers(storage, postgres_location)
    import autotrack

    frame = autotrack.runs(store=postgres_location)
    (parent_id,) = frame[frame["parent_id"].isna()]["id"]
    params = autotrack.get_run(parent_id, store=postgres_location).params
    assert params["storage"].startswith("postgresql+psycopg://127.0.0.1") and pg_server.password not in str(params)
