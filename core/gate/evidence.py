"""What a gate was judged on (SPEC R1.7): the data's kind, source, symbols, window and a content hash.

Three kinds: ``synthetic`` (the generated market: a rehearsal's evidence, never real), ``replay`` (candles read from
files: recorded market data, e.g. ``rampart data download``; the content hash says exactly which candles) and
``forward`` (forward paper sessions on an exchange's live market: real when that exchange's market is the real one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from core.market import CandleSet
from core.market.candles import CANDLE_COLUMNS, timeframe_ms

Kind = Literal["synthetic", "replay", "forward"]
KINDS: tuple[str, ...] = ("synthetic", "replay", "forward")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Evidence:
    """The data a gate record was judged on. ``real``: recorded or live market data, not generated."""

    kind: Kind
    real: bool
    source: str
    symbols: tuple[str, ...]
    start: datetime | None
    end: datetime | None  # the end of the last bar (its open time plus the timeframe)
    days: float  # market time covered by the bars (gaps, e.g. between forward sessions, not counted)
    content_hash: str
    venue: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The ``gate_results`` columns that name the evidence (schema v7)."""
        return {"evidence": self.kind, "real_data": self.real, "data_source": self.source,
                "symbols": list(self.symbols), "window_start": self.start, "window_end": self.end,
                "days": self.days, "data_hash": self.content_hash, "venue": self.venue, "data": dict(self.details)}

    def describe(self) -> str:
        """'replay BTC_USDT-1h.feather, ETH_USDT-1h.feather: BTCUSDT,ETHUSDT 2024-01-01..2024-03-31, 90.0 days,
        data 1a2b3c4d' — one line for refusals and the history."""
        return describe(self.columns())


def describe(record: Mapping[str, Any]) -> str:
    """One line naming a gate record's evidence, or saying that it names none (records before schema v7)."""
    kind = record.get("evidence")
    if not kind:
        return "evidence not recorded (a gate from before the evidence was kept)"
    symbols = ",".join(record.get("symbols") or ())
    window = "..".join(_day(record.get(k)) for k in ("window_start", "window_end"))
    days = record.get("days")
    span = f", {days:.1f} days" if isinstance(days, int | float) else ""
    digest = str(record.get("data_hash") or "")[:8]
    return f"{kind} {record.get('data_source') or '?'}: {symbols} {window}{span}, data {digest or '?'}"


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d")
    return "?"


def frame_digest(frames: Iterable[tuple[str, pl.DataFrame]], columns: Sequence[str]) -> str:
    """sha256 of the named frames' ``columns`` as little-endian int64/float64 bytes, in the order given: the same
    rows give the same hash on any machine, whatever the file format they were read from."""
    digest = hashlib.sha256()
    for name, frame in frames:
        digest.update(f"{name}:{frame.height}:".encode())
        for col in columns:
            series = frame[col]
            if series.dtype.is_temporal():
                series = series.dt.epoch("ms")
            data = series.cast(pl.Float64 if series.dtype.is_float() else pl.Int64).to_numpy()
            digest.update(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def candle_evidence(sets: Sequence[CandleSet], source: str | Sequence[str | Path], *, seed: int | None = None,
                    days: float | None = None) -> Evidence:
    """The evidence of a paper run on ``sets``: synthetic (``source == "synthetic"``) or a replay of files."""
    symbols = tuple(cs.symbol for cs in sets)
    starts = [_utc(cs.frame["ts"].min()) for cs in sets if cs.frame.height]
    ends = [_utc(cs.frame["ts"].max()) for cs in sets if cs.frame.height]
    tf = timeframe_ms(sets[0].timeframe) if sets else 0
    start = min(starts) if starts else None
    last = max(ends) if ends else None
    end = datetime.fromtimestamp((last.timestamp() * 1000 + tf) / 1000, tz=UTC) if last is not None else None
    span = (end - start).total_seconds() * 1000 / DAY_MS if start is not None and end is not None else 0.0
    digest = frame_digest(((f"{cs.symbol}/{cs.timeframe}", cs.frame) for cs in sets), CANDLE_COLUMNS)
    if isinstance(source, str) and source == "synthetic":
        return Evidence("synthetic", False, f"seed {seed}", symbols, start, end, span, digest,
                        details={"seed": seed, "days": days, "timeframe": sets[0].timeframe if sets else None})
    paths = [source] if isinstance(source, str | Path) else list(source)
    names = ", ".join(Path(p).name for p in paths)
    return Evidence("replay", True, names, symbols, start, end, span, digest,
                    details={"files": [str(p) for p in paths], "last_days": days,
                             "timeframe": sets[0].timeframe if sets else None})


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


__all__ = ["DAY_MS", "KINDS", "Evidence", "Kind", "candle_evidence", "describe", "frame_digest"]
