"""Market data: the candle convention, file replay, resampling, the synthetic market and the quality suite."""

from core.market.candles import (
    CANDLE_COLUMNS,
    TIMEFRAMES,
    CandleSet,
    align,
    ccxt_to_symbol,
    normalize,
    symbol_to_ccxt,
    timeframe_ms,
)
from core.market.quality import CHECKS, check_candles, validate_candles
from core.market.replay import infer_timeframe, load_candles, parse_file_name
from core.market.resample import resample, resample_set
from core.market.synthetic import SyntheticConfig, generate, regime_path

__all__ = [
    "CANDLE_COLUMNS",
    "CHECKS",
    "TIMEFRAMES",
    "CandleSet",
    "SyntheticConfig",
    "align",
    "ccxt_to_symbol",
    "check_candles",
    "generate",
    "infer_timeframe",
    "load_candles",
    "normalize",
    "parse_file_name",
    "regime_path",
    "resample",
    "resample_set",
    "symbol_to_ccxt",
    "timeframe_ms",
    "validate_candles",
]
