"""Shared by the framework benchmarks: interleaved repetitions, medians, ratios against ``bare``."""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Callable


def interleaved(modes: dict[str, Callable[[], dict[str, float]]], reps: int, seed: int = 0) -> dict[str, list[dict[str, float]]]:
    """Run every mode once per repetition, in a shuffled order, and collect each sample."""
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    order = list(modes)
    rng = random.Random(seed)
    for rep in range(reps):
        rng.shuffle(order)
        for mode in order:
            samples[mode].append(modes[mode]())
        print(f"repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    return samples


def ratios(samples: dict[str, list[dict[str, float]]], title: str,
           base_for: dict[str, str] | None = None) -> list[dict[str, float | str]]:
    """Print and return the median of each figure per mode, and its ratio to ``bare``'s median (for
    figures bare has not, such as the time inside autotrack's hooks: the ratio to the bare figure
    ``base_for`` names, by default the wall time)."""
    base_for = base_for or {}
    kinds = sorted({k for runs in samples.values() for s in runs for k in s})
    medians = {mode: {k: statistics.median(s[k] for s in runs if k in s) for k in kinds if any(k in s for s in runs)}
               for mode, runs in samples.items()}
    base = medians["bare"]
    print(f"\n{title}\n")
    print(f"{'mode':<18}" + "".join(f"{k:>22}{'ratio':>14}" for k in kinds))
    rows: list[dict[str, float | str]] = []
    for mode, m in medians.items():
        row: dict[str, float | str] = {"mode": mode}
        line = f"{mode:<18}"
        for k in kinds:
            if k in m:
                ratio = m[k] / base.get(k, base[base_for.get(k, "wall_s")])
                row[k], row[f"{k}_ratio"] = m[k], ratio
                line += f"{m[k]:>22.6f}{ratio:>14.3f}"
            else:
                line += " " * 36
        print(line)
        rows.append(row)
    return rows
