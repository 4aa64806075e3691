"""Daily-report benchmark (issue 6 target: a day with 1,000 trades builds all three formats in under 3 s).

Usage: ``python bench/daily_report.py [TRADES] [RUNS]`` (default 1000 trades, 3 runs). ``make_day`` writes one
synthetic live day into a fresh DuckDB file — a live session on 1-minute BTCUSDT/ETHUSDT bars of 2024-01-02, TRADES
round trips with their orders, fills, entry and exit decisions (indicator values, sizing), a stop exit every
fifth trade, the equity curve, risk events and refusals, a passed paper gate — plus the candle files the backtest
reads. Each run then times the whole report: read the day, backtest it over the same candles, attribute, reasons in
words, suggestions, and write JSON (schema-validated), CSV and PDF. Prints one JSON line (median and max seconds,
and each step of the last run). ``tests/test_daily_report.py`` uses ``make_day`` for its small synthetic days.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.build import config_hash
from core.config import Settings, load_settings
from core.domain import Mode
from core.market import generate
from core.store import Store
from core.validation import session_row

DAY = date(2024, 1, 2)  # the synthetic market starts on 2024-01-01: the day before is the warm-up
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.02}}
SYMBOLS = ("BTCUSDT", "ETHUSDT")
SESSION = "bench0000session0000000000000001"


def settings_for(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"})


def write_candles(folder: Path) -> list[Path]:
    """Two days of seeded 1-minute candles per symbol as Parquet files (``SYMBOL-1m.parquet``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cs in generate(list(SYMBOLS), "1m", 2.0, 11):
        path = folder / f"{cs.symbol}-1m.parquet"
        cs.frame.write_parquet(path)
        paths.append(path)
    return paths


def make_day(data_dir: Path, trades: int = 1000, *, with_trades: bool = True) -> tuple[Settings, list[Path]]:
    """A live day of ``trades`` round trips in ``data_dir`` (see the module docstring); returns settings and the
    candle files. ``with_trades=False`` writes the session and its equity only (a day without trades)."""
    settings = settings_for(data_dir)
    candles = write_candles(data_dir / "candles")
    market = {c.symbol: c.frame for c in generate(list(SYMBOLS), "1m", 2.0, 11)}
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    store = Store(settings.db_path)
    chash = config_hash(settings)
    row = session_row(SESSION, Mode.LIVE, settings, chash, start)
    store.begin_session({**row, "starting_equity": 10_000.0})
    rows = _trade_rows(market, start, trades if with_trades else 0)
    equity = _equity(start, rows["trades"])
    frames = {k: pl.DataFrame(v, infer_schema_length=None) for k, v in rows.items() if v}
    frames["equity"] = equity
    store.append_many({k: f.with_columns(pl.lit(SESSION).alias("session_id")) for k, f in frames.items()})
    store.record_event(kind="session", severity="critical", code="BREAKER_CONSECUTIVE_LOSSES",
                       message="BREAKER_CONSECUTIVE_LOSSES: 4 losing trades in a row; entries blocked for 1h",
                       session_id=SESSION, ts=start + timedelta(hours=6))
    store.record_event(kind="session", severity="critical", code="STATE_CHANGED",
                       message="ACTIVE -> SAFE_MODE: DAILY_LOSS_LIMIT", session_id=SESSION,
                       ts=start + timedelta(hours=20))
    store.finish_session(SESSION, status="completed", ended_at=start + timedelta(days=1),
                         final_equity=float(equity["equity"][-1]), error=None, frames={})
    store.record_gate({"passed": True, "config_hash": chash, "strategy": STRATEGY["name"], "session_id": None,
                       "reasons": [], "created_at": start - timedelta(days=1),
                       "metrics": {"trades": 120, "win_rate": 0.55, "profit_factor": 1.4, "sharpe": 1.1,
                                   "max_drawdown": 0.05, "fees": 40.0, "net_pnl": 300.0, "expectancy": 2.5}})
    return settings, candles


def _trade_rows(frames: dict[str, pl.DataFrame], start: datetime, n: int) -> dict[str, list[dict[str, Any]]]:
    """Round trips on alternating symbols, each entered on a bar's open and left a bar later; fills 20 bps worse
    than the decision's close (a wide live spread) with a 0.1 % fee."""
    out: dict[str, list[dict[str, Any]]] = {"trades": [], "fills": [], "orders": [], "decisions": []}
    rng = np.random.default_rng(5)
    minute = timedelta(minutes=1)
    day_rows = {s: f.filter(pl.col("ts") >= start).head(1440) for s, f in frames.items()}
    for k in range(n):
        sym = SYMBOLS[k % 2]
        bar = (k // 2) * 1440 // max(1, (n + 1) // 2)
        candles = day_rows[sym]
        decided, ref_in = start + bar * minute, float(candles["close"][bar])
        ref_out = float(candles["close"][min(bar + 1, 1439)])
        qty = round(200.0 / ref_in, 5)
        entry, exit_ = ref_in * 1.002, ref_out * 0.998
        stop_exit = k % 5 == 4
        cid_in, cid_out = f"rp{SESSION[:8]}-{sym}-{k}e", f"rp{SESSION[:8]}-{sym}-{k}{'s' if stop_exit else 'x'}"
        t_in, t_out = decided + minute, decided + 2 * minute - timedelta(seconds=1)
        fees = (entry + exit_) * qty * 0.001
        gross = (exit_ - entry) * qty
        out["trades"].append({"trade_id": f"{sym}-{k + 1}", "mode": "live", "symbol": sym, "entry_time": t_in,
                              "exit_time": t_out, "entry_price": entry, "exit_price": exit_, "qty": qty,
                              "fees": fees, "gross_pnl": gross, "net_pnl": gross - fees,
                              "return_pct": (gross - fees) / (entry * qty),
                              "entry_reason": f"SMA3 above SMA8 at close {ref_in:.2f}",
                              "exit_reason": "protective stop hit" if stop_exit else "SMA3 below SMA8",
                              "exit_kind": "stop" if stop_exit else "signal"})
        stop = ref_in * (1 - 0.02 if not stop_exit else 1 - 0.001)
        out["orders"] += [_order(cid_in, sym, "buy", "market", qty, decided, "entry"),
                          _order(cid_out, sym, "sell", "stop" if stop_exit else "market", qty,
                                 t_in if stop_exit else decided + minute, "stop" if stop_exit else "exit",
                                 stop if stop_exit else None)]
        out["fills"] += [_fill(cid_in, sym, "buy", qty, entry, t_in), _fill(cid_out, sym, "sell", qty, exit_, t_out)]
        ind = {"sma_fast": ref_in * (1 + rng.uniform(0, 1e-3)), "sma_slow": ref_in, "close": ref_in}
        out["decisions"].append(_decision(k, decided, sym, "enter", cid_in, ind, ref_in, stop))
        if not stop_exit:
            out["decisions"].append(_decision(k, decided + minute, sym, "exit", cid_out, ind, ref_out, None))
        if k % 7 == 0:
            out["decisions"].append({"decision_id": f"d{k}-x", "ts": decided, "symbol": SYMBOLS[(k + 1) % 2],
                                     "kind": "denied", "action": "enter", "code": "CORRELATION_BLOCK",
                                     "reason": "cue", "details": json.dumps({"denied": "rho=0.82>0.70"})})
    return out


def _order(cid: str, sym: str, side: str, type_: str, qty: float, ts: datetime, tag: str,
           stop: float | None = None) -> dict[str, Any]:
    return {"client_order_id": cid, "symbol": sym, "side": side, "type": type_, "qty": qty, "status": "filled",
            "filled_qty": qty, "created_at": ts, "updated_at": ts, "tag": tag, "stop_price": stop}


def _fill(cid: str, sym: str, side: str, qty: float, price: float, ts: datetime) -> dict[str, Any]:
    return {"fill_id": f"{cid}-1", "client_order_id": cid, "symbol": sym, "side": side, "qty": qty, "price": price,
            "fee": qty * price * 0.001, "fee_asset": "USDT", "liquidity": "taker", "slippage": 0.0, "ts": ts}


def _decision(k: int, ts: datetime, sym: str, action: str, cid: str, ind: dict[str, float], price: float,
              stop: float | None) -> dict[str, Any]:
    details = {"indicators": ind, "stop": stop, "target": None, "state": "ACTIVE", "market": {"price": price},
               "order": {"client_order_id": cid, "side": "buy" if action == "enter" else "sell"}}
    if action == "enter":
        details["sizing"] = {"risk_per_trade": 0.001, "exposure_cap": 0.02, "binding": "exposure_cap"}
    return {"decision_id": f"d{k}-{action}", "ts": ts, "symbol": sym, "kind": "order", "action": action,
            "code": "SUBMITTED", "reason": "bench", "details": json.dumps(details)}


def _equity(start: datetime, trades: list[dict[str, Any]]) -> pl.DataFrame:
    """One mark per minute: 10,000 plus the net P&L of the trades closed so far."""
    pnl = np.zeros(1440)
    for t in trades:
        pnl[min(1439, int((t["exit_time"] - start).total_seconds() // 60) + 1):] += t["net_pnl"]
    ts = pl.datetime_range(start, start + timedelta(minutes=1439), "1m", time_zone="UTC", eager=True)
    equity = 10_000.0 + pnl
    return pl.DataFrame({"ts": ts, "equity": equity, "cash": equity * 0.99, "exposure": np.full(1440, 0.01)})


def run_once(settings: Settings, candles: list[Path], out: Path) -> dict[str, float]:
    """One full report; seconds per step."""
    from core.reporting.daily.builder import build_daily_report
    from core.reporting.daily.candles import FileCandles
    from core.reporting.daily.export_csv import write_csv
    from core.reporting.daily.export_json import write_json
    from core.reporting.daily.export_pdf import write_pdf

    t0 = time.perf_counter()
    report = build_daily_report(Store(settings.db_path), settings, DAY, FileCandles(candles))
    t1 = time.perf_counter()
    write_json(report, out / "report.json")
    t2 = time.perf_counter()
    write_csv(report, out)
    t3 = time.perf_counter()
    write_pdf(report, out / "report.pdf", settings.reports.font_dir)
    t4 = time.perf_counter()
    return {"build": t1 - t0, "json": t2 - t1, "csv": t3 - t2, "pdf": t4 - t3, "total": t4 - t0,
            "trades": len(report.trades)}


def main(n: int = 1000, runs: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings, candles = make_day(Path(tmp), n)
        import core.reporting.daily.export_pdf  # noqa: F401  (imports are not part of a report's time)
        results = [run_once(settings, candles, Path(tmp) / "out") for _ in range(runs)]
    totals = [r["total"] for r in results]
    summary = {"trades": n, "runs": runs, "median_s": round(statistics.median(totals), 3),
               "max_s": round(max(totals), 3), "last_run": {k: round(v, 3) for k, v in results[-1].items()},
               "target_s": 3.0}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
