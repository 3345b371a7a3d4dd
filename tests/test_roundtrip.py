"""Property test: whatever is logged reads back equal (hypothesis)."""

from __future__ import annotations

import math
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autotrack
from autotrack._capture.redact import is_secret_name  # such params are redacted on purpose (test_run.py)

keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60
)
floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True) | st.sampled_from(
    [-0.0, 5e-324, 1e308, -1e308, math.nan, math.inf, -math.inf]
)
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=200) | st.floats(
    allow_nan=False, allow_infinity=False
)
param_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.lists(st.tuples(keys, floats), min_size=1, max_size=50))
def test_metric_values_and_keys_round_trip(store, points):
    with autotrack.start_run() as run:
        for key, value in points:
            run.log_metric(key, value)
    rec = autotrack.get_run(run.id)
    expected: dict[str, list[float]] = {}
    for key, value in points:
        expected.setdefault(key, []).append(value)
    assert set(rec.metric_keys) == set(expected)
    for key, values in expected.items():
        got = rec.metric(key)
        assert [_bits(v) for v in got["value"]] == [_bits(v) for v in values]  # NaN, -0.0 included
        assert got["step"].tolist() == list(range(len(values)))
        assert _bits(rec.summary[key]) == _bits(values[-1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(keys.filter(lambda k: "." not in k and not is_secret_name(k)), param_values, max_size=10))
def test_param_values_round_trip(store, params):
    with autotrack.start_run() as run:
        run.log_params(params)
    assert autotrack.get_run(run.id).params == params


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nested=st.dictionaries(st.sampled_from("abc"), st.dictionaries(st.sampled_from("xyz"), st.integers(), min_size=1), min_size=1))
def test_nested_params_flatten_to_dotted_keys(store, nested):
    with autotrack.start_run() as run:
        run.log_params(nested)
    expected = {f"{outer}.{inner}": v for outer, d in nested.items() for inner, v in d.items()}
    assert autotrack.get_run(run.id).params == expected
