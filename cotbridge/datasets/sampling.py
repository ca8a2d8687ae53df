"""Reproducible subsets: the same row positions pandas' `df.sample(n=..., random_state=seed)` picks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from cotbridge.errors import ConfigError

T = TypeVar("T")

# The paper's seed (`df.sample(n=100, random_state=42)`); used when a sample size is given without a seed.
DEFAULT_SEED = 42


def sample_positions(total: int, sample: int, seed: int | None = None) -> list[int]:
    """`sample` distinct positions out of `total`, in the order pandas' `DataFrame.sample` returns them.

    pandas draws `np.random.RandomState(seed).choice(total, sample, replace=False)`; this is that draw.
    """
    state = np.random.RandomState(DEFAULT_SEED if seed is None else seed)
    return [int(i) for i in state.choice(total, sample, replace=False)]


def take_sample(items: Sequence[T], sample: int | None, seed: int | None, *, source: str) -> list[T]:
    """All of `items` when `sample` is None, else the pandas-compatible sample of them (see `sample_positions`).

    `source` names the dataset in error messages.
    """
    if sample is None:
        return list(items)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ConfigError(f"{source}: sample must be a positive integer, not {sample!r}")
    if sample > len(items):
        raise ConfigError(f"{source}: sample={sample} but the dataset has only {len(items)} problems; ask for fewer")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise ConfigError(f"{source}: seed must be an integer in [0, 2**32), not {seed!r}")
    return [items[i] for i in sample_positions(len(items), sample, seed)]
