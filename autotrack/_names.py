"""Readable run names: ``brisk-heron-42``."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "dapper", "eager", "fancy", "gentle",
    "glad", "golden", "hardy", "humble", "jolly", "keen", "lively", "lucky", "mellow", "merry",
    "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid", "sharp", "shiny", "silent",
    "sleek", "snowy", "solid", "spry", "steady", "stellar", "sunny", "swift", "tidy", "vivid",
    "warm", "wise", "witty", "zesty",
)
_NOUNS = (
    "badger", "beacon", "bison", "cedar", "comet", "coral", "crane", "delta", "falcon", "fern",
    "finch", "fjord", "gecko", "glacier", "harbor", "hawk", "heron", "ibis", "lynx", "maple",
    "meadow", "nebula", "otter", "panda", "pine", "quartz", "raven", "reef", "river", "robin",
    "sparrow", "spruce", "summit", "thistle", "tiger", "tundra", "valley", "walrus", "willow",
    "wren", "yak", "zephyr",
)

_rng = random.SystemRandom()


def generate_name() -> str:
    return f"{_rng.choice(_ADJECTIVES)}-{_rng.choice(_NOUNS)}-{_rng.randint(1, 99)}"
