"""The ``rampart`` command: paper validation and backtests from the terminal.

Exit codes: 0 the gate passed (or the backtest ran), 3 the gate failed, 1 an error (one line on stderr that
says what to fix), 2 a malformed command line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

# typer 0.29 ships its own click; its usage errors are these classes, not the click package's.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from core.commands import ExchangeOpt, SandboxUrlOpt
from core.errors import RampartError
from core.redact import install_log_redaction, redact
from core.sandbox.cli import sandbox as sandbox_command

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Rampart: prove a strategy on paper, then trade it live with capital protection.")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_FAILED = 0, 1, 2, 3

SourceOpt = Annotated[list[str], typer.Option(
    "--source", help="'synthetic' (seeded generated market) or candle files (Feather/Parquet/CSV), one per "
                     "symbol; repeat the option or separate with commas.")]
SymbolsOpt = Annotated[str | None, typer.Option(
    help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT (allow-list, at most 2); default RAMPART_MARKET__SYMBOLS")]
DaysOpt = Annotated[float | None, typer.Option(
    help="days of candles: synthetic length (default 120), or the last N days of the files (default all)")]
SeedOpt = Annotated[int, typer.Option(help="seed of the synthetic market (same seed, same candles)")]
StrategyOpt = Annotated[str | None, typer.Option(
    help="a built-in (mean_reversion, trend, sma_cross), your own path/to/file.py:Class or package.module:Class, or "
         "the name of a strategy in the strategies folder (see `rampart strategies`); default from settings")]
TimeframeOpt = Annotated[str | None, typer.Option(help="candle size, e.g. 5m, 15m, 1h (default from settings)")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="strategy parameter override NAME=VALUE, repeatable (e.g. --param fast=10)")]
DataDirOpt = Annotated[Path | None, typer.Option(help="where the database and reports go (default ./data)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as one JSON object instead of a table")]


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on the terminal (stderr) for a long step; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"{what}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                  transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--param '{item}' must look like NAME=VALUE, e.g. --param fast=10")
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def _settings(symbols: str | None, strategy: str | None, timeframe: str | None, params: list[str] | None,
              data_dir: Path | None, exchange: str | None = None, exchange_url: str | None = None) -> Any:
    from core.config import load_settings, run_overrides

    return load_settings(**run_overrides(symbols, strategy, timeframe, _parse_params(params), data_dir, exchange,
                                         exchange_url))


def _sources(source: list[str]) -> str | list[str]:
    items = [s.strip() for part in source for s in part.split(",") if s.strip()]
    if not items:
        raise _fail("--source is empty; use 'synthetic' or candle file paths")
    if items == ["synthetic"]:
        return "synthetic"
    if "synthetic" in items:
        raise _fail("--source synthetic cannot be mixed with files")
    for item in items:
        if not Path(item).is_file():
            raise _fail(f"candle file not found: {item}; check the path")
    return items


MAX_DAYS = 3_650  # ten years of candles: 87,600 hourly bars, or 5.3 million 1-minute bars of a file
MAX_SEED = 2**63 - 1
MAX_RUN_S = 366 * 86_400  # a live session's --duration: at most a year (run without it to go on until stopped)
MAX_POLL_S = 3_600.0


def _check_range(option: str, value: float | None, low: float, high: float, unit: str, *,
                 low_open: bool = True) -> None:
    """Refuse a numeric option outside its range (NaN and infinities too) before any work, naming the option."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    if not (above and value <= high):  # also false for NaN
        what = "a positive number" if low_open and low == 0 else f"a number from {_num(low)}"
        raise _fail(f"{option} must be {what}{f' of {unit}' if unit else ''} up to {_num(high)}, got {_num(value)}")


def _num(x: float) -> str:
    """1,000,000 for whole numbers a person reads; 1e+300, nan, inf as they are."""
    return f"{int(x):,}" if math.isfinite(x) and float(x).is_integer() and abs(x) < 1e19 else f"{x:g}"


def _check_days(days: float | None) -> None:
    _check_range("--days", days, 0, MAX_DAYS, "days")


def _run_inputs(source: list[str], days: float | None, symbols: str | None, strategy: str | None, timeframe: str | None,
                param: list[str] | None, data_dir: Path | None, seed: int = 0) -> tuple[str | list[str], Any]:
    """Validate a paper/backtest command's inputs before anything runs or is written."""
    _check_days(days)
    _check_range("--seed", seed, 0, MAX_SEED, "", low_open=False)
    return _sources(source), _settings(symbols, strategy, timeframe, param, data_dir)


ForwardOpt = Annotated[bool, typer.Option(
    "--forward", help="paper-trade on the live market (the exchange's public data, simulated fills, no keys) until "
                      "stopped, instead of replaying candles")]
DurationOpt = Annotated[float | None, typer.Option(help="stop after this many seconds (default: run until "
                                                       "SIGTERM/Ctrl-C)")]
MaxBarsOpt = Annotated[int | None, typer.Option(help="stop after this many bars")]
PollOpt = Annotated[float, typer.Option(help="seconds between polls for a new closed candle")]
ControlPortOpt = Annotated[int | None, typer.Option(help="serve the dashboard and control API on 127.0.0.1:PORT "
                                                         "(0 = a free port)")]


@app.command()
def paper(source: SourceOpt = ["synthetic"], symbols: SymbolsOpt = None,  # noqa: B006
          days: DaysOpt = None, seed: SeedOpt = 7, strategy: StrategyOpt = None, timeframe: TimeframeOpt = None,
          param: ParamOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False,
          forward: ForwardOpt = False, exchange: ExchangeOpt = None, sandbox_url: SandboxUrlOpt = None,
          duration: DurationOpt = None, max_bars: MaxBarsOpt = None, poll: PollOpt = 0.25,
          control_port: ControlPortOpt = None) -> None:
    """Paper-validate a strategy and run the go-live gate (SPEC R1): exit 0 passed, 3 failed, 1 error. With
    --forward: paper-trade on the live market of --exchange until stopped (exit 0, or 1 on an error)."""
    from core.reporting.analysis import hints
    from core.reporting.paper_report import blocked_frame, format_blocked, format_notes, format_verdict
    from core.validation import run_paper_validation

    if forward:
        if source != ["synthetic"] or days is not None:
            raise _fail("--source and --days replay candles; --forward trades the live market: drop them",
                        EXIT_USAGE)
        _run_node(True, duration, max_bars, poll, control_port, symbols, strategy, timeframe, param, data_dir,
                  exchange, sandbox_url)
    if exchange is not None or sandbox_url is not None:
        raise _fail("--exchange and --sandbox-url go with --forward (paper on the live market)", EXIT_USAGE)
    src, settings = _run_inputs(source, days, symbols, strategy, timeframe, param, data_dir, seed)
    with _progress("paper run") as progress:
        out = run_paper_validation(settings, src, days=days, seed=seed, progress=progress)
    if as_json:
        typer.echo(json.dumps({"passed": out.verdict.passed, "session_id": out.session_id,
                               "config_hash": out.config_hash, "reasons": list(out.verdict.reasons),
                               "metrics": out.metrics.to_dict(), "report": str(out.report_paths.get("json")),
                               "database": str(out.db_path)}))
    else:
        typer.echo(format_verdict(out.metrics, out.verdict))
        if out.result is not None:
            typer.echo(format_blocked(blocked_frame(out.result.decisions)))
        for problem in out.problems:
            typer.echo(f"  data problem: {problem}")
        if notes := format_notes(hints(settings, out.result)):
            typer.echo(notes)
        typer.echo(f"Session  {out.session_id}")
        typer.echo(f"Report   {out.report_paths.get('json')}")
        typer.echo(_report_files(out.report_paths))
        typer.echo(f"Database {out.db_path}")
    raise typer.Exit(EXIT_OK if out.verdict.passed else EXIT_GATE_FAILED)


@app.command()
def backtest(source: SourceOpt = ["synthetic"], symbols: SymbolsOpt = None,  # noqa: B006
             days: DaysOpt = None, seed: SeedOpt = 7, strategy: StrategyOpt = None, timeframe: TimeframeOpt = None,
             param: ParamOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Run the same engine over the candles without the gate; prints the metrics and stores the session."""
    from core.backtest import run_backtest
    from core.reporting.analysis import hints
    from core.reporting.paper_report import format_metrics, format_notes

    src, settings = _run_inputs(source, days, symbols, strategy, timeframe, param, data_dir, seed)
    out = run_backtest(settings, src, days=days, seed=seed)
    if as_json:
        typer.echo(json.dumps({"session_id": out.session_id, "metrics": out.metrics.to_dict(),
                               "errors": out.errors, "report": str(out.report_paths.get("json")),
                               "database": str(settings.db_path)}))
    else:
        typer.echo(format_metrics(out.metrics))
        for err in out.errors:
            typer.echo(f"  error: {err}")
        if notes := format_notes(hints(settings, out.result)):
            typer.echo(notes)
        typer.echo(f"Session  {out.session_id}\nReport   {out.report_paths.get('json')}")
        typer.echo(_report_files(out.report_paths))
        typer.echo(f"Database {settings.db_path}")
    raise typer.Exit(EXIT_ERROR if out.errors else EXIT_OK)


def _report_files(paths: dict[str, Path]) -> str:
    """The report's page and PDF, to open (the line under ``Report``)."""
    shown = [str(paths[k]) for k in ("html", "pdf") if k in paths]
    return f"         {'  '.join(shown)}" if shown else "         (no HTML or PDF written)"


@app.command("check-strategy")
def check_strategy(
    strategy: Annotated[str, typer.Argument(help="a built-in name, path/to/file.py:Class, package.module:Class, or "
                                                 "a name in the strategies folder")],
    source: SourceOpt = ["synthetic"], symbols: SymbolsOpt = None,  # noqa: B006
    days: DaysOpt = None, seed: SeedOpt = 7, timeframe: TimeframeOpt = None, param: ParamOpt = None,
    checkpoints: Annotated[int, typer.Option(help="bars to cut the data at (decision bars first), 1-200")] = 12,
    as_json: JsonOpt = False,
) -> None:
    """Look-ahead analysis (R10.4): run the strategy over the candles, then again with the bars after each checkpoint
    hidden; any decision or indicator value that changes means it reads the future. Exit 0 clean, 3 flagged, 1
    error. Writes nothing."""
    from core.errors import DataQualityError
    from core.lookahead import check_lookahead
    from core.validation import check_market, load_market

    _check_range("--checkpoints", checkpoints, 1, 200, "", low_open=False)
    src, settings = _run_inputs(source, days, symbols, strategy, timeframe, param, None, seed)
    sets = load_market(src, settings, days=days, seed=seed)
    problems = check_market(sets)
    if problems:
        raise DataQualityError(problems)
    report = check_lookahead(settings, sets, checkpoints)
    typer.echo(json.dumps(report.to_dict()) if as_json else "\n".join(report.lines()))
    raise typer.Exit(EXIT_OK if report.passed else EXIT_GATE_FAILED)


@app.command()
def live(exchange: ExchangeOpt = None, sandbox_url: SandboxUrlOpt = None, duration: DurationOpt = None,
         max_bars: MaxBarsOpt = None, poll: PollOpt = 0.25, control_port: ControlPortOpt = None,
         symbols: SymbolsOpt = None, strategy: StrategyOpt = None, timeframe: TimeframeOpt = None,
         param: ParamOpt = None, data_dir: DataDirOpt = None) -> None:
    """Trade live (R2): preflight (recent passed gate for this config, credentials, exchange, clock, markets,
    allow-list), reconcile, then trade at the first rung until stopped. Keys: RAMPART_API_KEY/RAMPART_API_SECRET."""
    _run_node(False, duration, max_bars, poll, control_port, symbols, strategy, timeframe, param, data_dir,
              exchange, sandbox_url)


def _show_heartbeat() -> None:
    """A line per bar on the terminal (equity, positions and stops, state, latency): the session's heartbeat."""
    heart = logging.getLogger("rampart.heartbeat")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    heart.addHandler(handler)
    heart.setLevel(logging.INFO)
    heart.propagate = False


def _run_node(forward: bool, duration: float | None, max_bars: int | None, poll: float, control_port: int | None,
              symbols: str | None, strategy: str | None, timeframe: str | None, param: list[str] | None,
              data_dir: Path | None, exchange: str | None, sandbox_url: str | None) -> None:
    """A live session (or, ``forward``, a forward paper session) until SIGTERM/Ctrl-C, the duration or max bars."""
    import signal
    import threading

    from core.live.session import LiveOptions, summary_text
    from core.node import open_forward, open_live

    _check_range("--duration", duration, 0, MAX_RUN_S, "seconds")
    _check_range("--max-bars", max_bars, 1, 10_000_000, "bars", low_open=False)
    _check_range("--poll", poll, 0, MAX_POLL_S, "seconds")
    _check_range("--control-port", control_port, 0, 65_535, "", low_open=False)
    settings = _settings(symbols, strategy, timeframe, param, data_dir, exchange, sandbox_url)
    options = LiveOptions(poll_interval_s=poll, duration_s=duration, max_bars=max_bars, control_port=control_port)
    session = open_forward(settings, None, options) if forward else open_live(settings, None, options)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    what = "Forward paper session" if forward else "Live session"
    typer.echo(f"{what} {session.session_id} on {session.venue.describe()}: trading "
               f"{','.join(settings.market.symbols)} (stop with Ctrl-C)")
    _show_heartbeat()
    if session.control is not None:
        typer.echo(f"Dashboard {session.control.url}")
    summary = session.run(stop)
    typer.echo(summary_text(summary))
    raise typer.Exit(EXIT_ERROR if summary.stopped_because.startswith("error") else EXIT_OK)


app.command("sandbox")(sandbox_command)

@app.command()
def override(action: Annotated[str, typer.Argument(help="resume | clear-breaker | reset-derisk")],
             reason: Annotated[str, typer.Option(help="why (recorded and notified; required)")] = "",
             breaker: Annotated[str | None, typer.Option(help="with clear-breaker: consecutive_losses, "
                                                                "api_errors or slippage")] = None,
             data_dir: DataDirOpt = None) -> None:
    """Operator override (R6.3). The token comes from RAMPART_OPERATOR_TOKEN (or a hidden prompt), never an
    argument; it must belong to an operator or admin in RAMPART_OPERATORS. Every attempt is recorded."""
    import os

    from core.config import load_settings, run_overrides
    from core.control.overrides import apply_override

    settings = load_settings(**run_overrides(data_dir=data_dir))
    token = os.environ.get("RAMPART_OPERATOR_TOKEN") or (
        typer.prompt("operator token", hide_input=True, default="", show_default=False) if sys.stdin.isatty()
        else "")
    result = apply_override(settings, action, token or None, reason, breaker=breaker)
    if not result.accepted:
        raise _fail(f"{result.code}: {result.detail} (the refusal is recorded)")
    typer.echo(f"{result.action} accepted ({result.detail}); applied to the {result.applied_to}")


operators_app = typer.Typer(help="Operator tokens.", rich_markup_mode=None)
app.add_typer(operators_app, name="operators")


@operators_app.command("hash-token")
def hash_token_command() -> None:
    """Read a token from stdin and print its SHA-256, for RAMPART_OPERATORS (the token itself is never shown)."""
    from core.control.auth import hash_token

    token = sys.stdin.readline().strip()
    if not token:
        raise _fail("give the token on stdin, e.g. `printf %s \"$TOKEN\" | rampart operators hash-token`")
    typer.echo(hash_token(token))


data_app = typer.Typer(help="Market data: download candle history.", rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("download")
def data_download(symbol: Annotated[str, typer.Option(help="exchange symbol, e.g. BTCUSDT")],
                  since: Annotated[str, typer.Option(help="first day, YYYY-MM-DD (UTC)")],
                  timeframe: Annotated[str, typer.Option(help="candle size, e.g. 1m, 5m, 1h")] = "1m",
                  until: Annotated[str | None, typer.Option(help="stop before this day (default: now)")] = None,
                  exchange: ExchangeOpt = None, sandbox_url: SandboxUrlOpt = None,
                  out: Annotated[Path | None, typer.Option(help="folder (default DATA_DIR/candles)")] = None) -> None:
    """Download candles via ccxt into DATA_DIR/candles/SYMBOL-TF.parquet; run again to resume."""
    from core.config import INSTRUMENTS, load_settings, run_overrides
    from core.market.candles import timeframe_ms
    from core.market.download import download_candles, parse_since
    from core.venue import venue_for

    symbol = symbol.strip().upper()
    if symbol not in INSTRUMENTS:
        raise _fail(f"unknown symbol '{symbol}'; known: {', '.join(INSTRUMENTS)}")
    timeframe_ms(timeframe)
    start, end = parse_since(since), parse_since(until) if until else None
    settings = load_settings(**run_overrides(exchange=exchange, exchange_url=sandbox_url))
    folder = out or settings.data_dir / "candles"
    client = venue_for(settings.exchange).client()  # public data: no keys
    with _progress(f"downloading {symbol} {timeframe}") as progress:
        result = download_candles(client, symbol, timeframe, start, folder, end, progress=progress)
    typer.echo(f"{result.path}: {result.rows} candles ({result.new_rows} new), {result.first} -> {result.last}, "
               "data checks passed")


def _register_commands() -> None:
    from core.commands import dashboard, emergency, gate, report, scaling, security, sql, status, strategies

    for module in (emergency, dashboard, report, scaling, security, strategies, status, gate, sql):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns every Rampart error into one line on stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # R8.2: no secret in any log line, traceback or error message
    try:
        # Outside standalone mode click returns the code of typer.Exit instead of raising it.
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return EXIT_USAGE
    except UsageError as exc:
        hint = f" (see 'rampart {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        return EXIT_USAGE
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return EXIT_ERROR
    except RampartError as exc:
        typer.echo(f"error: {redact(str(exc))}", err=True)
        return EXIT_ERROR
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
