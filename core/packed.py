"""Packed columns: candle, indicator and equity series as ``array('d')`` / ``array('q')`` instead of lists.

A list of a million floats holds a million float objects (32 bytes each with the pointer); a packed array holds
8 bytes per value, is filled from polars' or numpy's buffer in one copy, and gives the garbage collector nothing to
walk. It indexes, slices, appends and iterates like a list, and numpy reads it without a copy.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import polars as pl


def floats(values: pl.Series | np.ndarray | list[float]) -> array[float]:
    """A column as a packed array of float64 (nulls → NaN)."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).fill_null(math.nan).to_numpy()
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).data.cast("B"))  # one copy, not two
    return out


def ints(values: pl.Series) -> array[int]:
    """An integer column (epoch ms) as a packed array of int64."""
    out = array("q")
    out.frombytes(np.ascontiguousarray(values.to_numpy(), dtype=np.int64).data.cast("B"))
    return out
