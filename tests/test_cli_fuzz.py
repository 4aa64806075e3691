"""CLI and settings fuzz (issue 16): whatever the arguments and RAMPART_* values, JSON or not, huge, negative or NaN,
known or unknown, `rampart` answers with an exit code of 0/1/2/3 and never a traceback; a refusal (1/2) is one
`error:` line and leaves the working and data directories byte for byte as they were.

The real CLI runs in-process (``core.cli.main``, the entry point) for speed, with Hypothesis choosing the
command, its options and the environment (derandomized: the same examples every run), plus a few real
subprocesses. Commands that would trade or serve are aimed at a closed port or refused by their arguments; a
tripwire fails the test if the sandbox or the dashboard would really start.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from core.cli import main
from core.config import Settings, load_settings
from core.errors import RampartError
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on: every call to it is refused at once
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CLOSED = f"http://127.0.0.1:{_closed_port()}"
EXIT_CODES = {0, 1, 2, 3}
# Refusals these commands record on purpose (R6.3: every override or approval attempt is recorded and notified).
RECORDS_REFUSALS = {"override", "approve"}


# --- the settings, as environment variables ----------------------------------------------------------------
def _names(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        yield var, field.annotation
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _names(field.annotation, f"{var}__")


FIELDS = dict(_names(Settings, "RAMPART_"))
PATHS = {name for name, annotation in FIELDS.items() if "Path" in str(annotation)}
# Values that would reach a real service are not fuzzed: the venue is always the local sandbox at a closed port,
# Slack is never configured (no token), and Prefect answers from a closed port too.
PINNED = {"RAMPART_EXCHANGE__NAME", "RAMPART_EXCHANGE__URL", "RAMPART_NOTIFY__SLACK_TOKEN",
          "RAMPART_NOTIFY__SLACK_BASE_URL"}
NAMES = [*sorted(set(FIELDS) - PINNED), "RAMPART_BOGUS", "RAMPART_MARKET__BOGUS", "RAMPART_GATE__MIN_SHARPE__X",
         "RAMPART_", "RAMPART_API_KEY", "RAMPART_API_SECRET", "RAMPART_OPERATOR_TOKEN"]
BASE_ENV = {"RAMPART_EXCHANGE__URL": CLOSED, "RAMPART_NOTIFY__SLACK_BASE_URL": CLOSED,
            "PREFECT_API_URL": f"{CLOSED}/api"}

NUMBERS = ["0", "-1", "1", "0.5", "7", "1e9", "-1e9", "1e308", "1e400", "nan", "NaN", "inf", "-inf",
           "99999999999999999999999", "0x10", "1_000", "2.5e-9", "3651", "366000"]
WORDS = ["", " ", "x", "true", "false", "null", "BTCUSDT", "BTCUSDT,ETHUSDT", "btcusdt, ethusdt", "DOGEUSDT",
         "SOLUSDT", "é", "[", "{", "]", "'", '"', "\\", "1,2", "a=b", "${HOME}", "%s", "\t", '{"fast": 3}',
         '[[0.001, 0.02]]', '[{"name": "a"}]', '{"min_sharpe": 99}', "[1, 2]", "{}", "[]"]
PATH_VALUES = ["d2", "sub/d3", ".", "", "data", "missing/.env", "x.jsonl"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6).map(json.dumps)
VALUE = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS), JSON, TEXT)


@st.composite
def environments(draw: st.DrawFn, max_size: int = 3) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=max_size, unique=True)):
        env[name] = draw(st.sampled_from(PATH_VALUES) if name in PATHS else VALUE)
    return env


# --- the commands --------------------------------------------------------------------------------------------
def opt(name: str, values: list[str]) -> st.SearchStrategy[list[str]]:
    """The option with one of ``values``, or not given."""
    return st.one_of(st.just([]), st.sampled_from(values).map(lambda v: [name, v]))


def flag(name: str) -> st.SearchStrategy[list[str]]:
    return st.sampled_from([[], [name]])


def join(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(lambda chunks: [a for chunk in chunks for a in chunk])


def fixed(*args: str) -> st.SearchStrategy[list[str]]:
    return st.just(list(args))


VENUE = fixed("--exchange", "sandbox", "--sandbox-url", CLOSED)
DATA_DIR = opt("--data-dir", ["data", "d2", "sub/d3"])
SYMBOLS = opt("--symbols", ["BTCUSDT", "ETHUSDT,BTCUSDT", "DOGEUSDT", "", ",", "BTCUSDT,BTCUSDT", "btcusdt",
                            "SOLUSDT", "A,B,C", "BTCUSDT,ETHUSDT,BNBUSDT"])
STRATEGY = opt("--strategy", ["trend", "mean_reversion", "sma_cross", "martingale", "", "missing.py:Nope",
                              "os.path:join"])
TIMEFRAME = opt("--timeframe", ["1h", "15m", "1m", "7m", "", "1d", "1H"])
PARAMS = st.lists(st.sampled_from(["fast=3", "window=99999999", "nonsense", "=1", "fast=nan", "window=1e400",
                                   "window=-1", "x=1", "window=[1]", "slow=2"]), max_size=2).map(
    lambda items: [a for item in items for a in ("--param", item)])
# Always given: without it a synthetic run is 120 days. Valid ones are short, so an accepted run stays quick.
DAYS = st.sampled_from(["0.5", "1", "2", "0", "-3", "nan", "inf", "-inf", "1e9", "366000", "3651", "abc", "",
                        "1e400"]).map(lambda d: ["--days", d])

RUNS = join(st.sampled_from([["paper"], ["backtest"]]), DAYS,
            opt("--seed", ["7", "0", "-1", str(2**64), "x", "1.5"]), SYMBOLS, STRATEGY, TIMEFRAME, PARAMS,
            opt("--source", ["synthetic", "missing.feather", "", "synthetic,missing.csv", ","]), flag("--json"),
            DATA_DIR)
LIVE = join(fixed("live"), VENUE, opt("--duration", ["1", "0", "-1", "nan", "1e12", "x"]),
            opt("--max-bars", ["5", "0", "-5", "x", "99999999999"]), opt("--poll", ["0.1", "0", "nan", "1e9", "-1"]),
            opt("--control-port", ["0", "-1", "70000", "x"]), SYMBOLS, STRATEGY, TIMEFRAME, PARAMS, DATA_DIR)
# One option surely out of range, last (the last of a repeated option wins): the sandbox must not start.
SANDBOX_BAD = st.sampled_from([["--speed", v] for v in ("nan", "0", "-5", "1e7", "inf")]
                              + [["--days", v] for v in ("0", "-1", "nan", "1e9", "367")]
                              + [["--port", "-1"], ["--port", "70000"], ["--clock", "sundial"],
                                 ["--commission", "gold"], ["--faults", "x"], ["--faults", "latency=-1"],
                                 ["--faults", "error5xx=2"], ["--source", ""], ["--warmup-days", "-1"],
                                 ["--warmup-days", "nan"], ["--warmup-days", "400"], ["--seed", "-1"],
                                 ["--seed", str(2**64)]])
SANDBOX = join(fixed("sandbox"), opt("--speed", ["60", "nan", "1e7"]), opt("--days", ["2", "1e9"]),
               opt("--warmup-days", ["1", "-1"]), opt("--port", ["0", "x"]), opt("--clock", ["manual", "x"]),
               SANDBOX_BAD)
OTHERS = st.one_of(
    join(fixed("dashboard"), VENUE, opt("--port", ["0", "-1", "70000", "x"]), opt("--host", ["127.0.0.1", "x"]),
         DATA_DIR),
    join(fixed("report", "daily"), opt("--date", ["2024-01-01", "x", "2024-13-01", ""]),
         opt("--format", ["json", "pdf,xml", "", "csv"]), opt("--candles", ["missing.parquet"]),
         flag("--no-notify"), flag("--json"), DATA_DIR),
    join(fixed("audit", "verify"), opt("--journal", ["missing.jsonl"]), flag("--json"), DATA_DIR),
    join(fixed("keys", "show"), DATA_DIR),
    join(fixed("keys", "rotate"), VENUE, opt("--wait", ["1", "0", "-1", "nan", "1e9", "x"]), DATA_DIR),
    join(fixed("data", "download"), VENUE, opt("--symbol", ["BTCUSDT", "DOGEUSDT", ""]),
         opt("--since", ["2024-01-01", "x", "2024-02-30", ""]), opt("--until", ["2023-01-01", "x"]),
         opt("--timeframe", ["1m", "7m", ""])),
    join(fixed("override"), st.sampled_from([["resume"], ["clear-breaker"], ["reset-derisk"], ["bogus"], [""]]),
         opt("--reason", ["", "why"]), opt("--breaker", ["api_errors", "bogus"]), DATA_DIR),
    join(fixed("approvals", "list"), flag("--json"), DATA_DIR),
    join(fixed("approve", "run-1"), flag("--yes"), opt("--reviewer", ["", "alice"]), opt("--comment", ["", "ok"]),
         DATA_DIR),
    st.sampled_from([["bogus-command"], ["paper", "--bogus"], ["live", "--days", "1"], ["--help"], ["-h"], [],
                     ["paper", "--help"], ["sandbox", "--help"], ["data"], ["keys"], ["report"]]),
)
COMMANDS = st.one_of(RUNS, LIVE, SANDBOX, OTHERS)


# --- running one example -------------------------------------------------------------------------------------
@contextlib.contextmanager
def isolated(env: dict[str, str], cwd: Path) -> Iterator[None]:
    """Only ``env`` (over BASE_ENV) of the RAMPART_* variables, in ``cwd``; everything restored afterwards."""
    saved, here = dict(os.environ), os.getcwd()
    for name in [n for n in os.environ if n.startswith(("RAMPART_", "PREFECT_API"))]:
        del os.environ[name]
    os.environ.update({**BASE_ENV, **env})
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's bytes (as a hash) and every folder under ``folder``."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return seen


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import core.dashboard.server as dashboard_server
    import core.sandbox.server as sandbox_server

    tripwire = AssertionError(f"`rampart {' '.join(argv)}` would have started a server")
    with isolated(env, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(sandbox_server, "serve", side_effect=tripwire), \
            mock.patch.object(dashboard_server, "OfflineDashboard", side_effect=tripwire):
        try:
            code = main(argv)
        except BaseException as exc:  # in the real CLI this would be a traceback
            raise AssertionError(f"`rampart {' '.join(argv)}` with {env} raised {type(exc).__name__}: {exc}") from exc
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory whose data dir already holds a database with a backtest in it."""
    work = tmp_path_factory.mktemp("populated")
    code, _, err = run(["backtest", "--days", "1", "--data-dir", "data"], {}, work)
    assert code == 0, err
    return work


@settings(max_examples=220, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(argv=COMMANDS, env=environments(), prepopulated=st.booleans())
@pytest.mark.req("R1.5")
@pytest.mark.req("R2.2")
@pytest.mark.req("R6.2")
def test_fuzzed_command_lines_and_settings_exit_cleanly_and_a_refusal_writes_nothing(
    argv: list[str], env: dict[str, str], prepopulated: bool, populated: Path
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        if prepopulated:
            shutil.copytree(populated, work)
        else:
            work.mkdir()
        before = snapshot(work)
        code, out, err = run(argv, env, work)
        shown = f"`rampart {' '.join(argv)}` with {env} -> {code}\nstdout: {out[-800:]}\nstderr: {err[-800:]}"
        assert code in EXIT_CODES, shown
        assert "Traceback" not in out + err, shown
        ran = "Session " in out  # a backtest that ran and stored its errors exits 1 too: not a refusal
        if code in (1, 2) and not ran:
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines and lines[-1].startswith("error: "), shown
            assert sum(line.startswith("error: ") for line in lines) == 1, shown
            if not argv or argv[0] not in RECORDS_REFUSALS:
                assert snapshot(work) == before, f"a refusal changed the directory: {shown}"


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(NAMES), value=VALUE)
@pytest.mark.req("R1.4")
@pytest.mark.req("R2.2")
@pytest.mark.req("R6.2")
def test_every_bad_setting_json_or_not_is_one_line_naming_its_variable(name: str, value: str) -> None:
    if name in PATHS:
        value = "x"
    with tempfile.TemporaryDirectory() as tmp, isolated({name: value}, Path(tmp)):
        try:
            load_settings()
        except RampartError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert name.rstrip("_") in message or name == "RAMPART_", f"{name}={value!r}: {message}"
        except Exception as exc:  # anything else would be a traceback
            pytest.fail(f"{name}={value!r} raised {type(exc).__name__}: {exc}")


# --- real processes ------------------------------------------------------------------------------------------
def rampart(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAMPART_", "PREFECT_API"))}
    full = {**clean, **BASE_ENV, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=cwd, env=full, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["paper", "--days", "1e9"], {}, "--days must be a positive number of days up to 3,650, got 1,000,000,000"),
    (["backtest", "--days", "366000"], {}, "--days must be a positive number of days up to 3,650, got 366,000"),
    (["paper", "--days", "1"], {"RAMPART_OPERATORS": "x"}, "RAMPART_OPERATORS"),
    (["paper", "--days", "1"], {"RAMPART_MARKET__SYMBOLS": "@@"}, "RAMPART_MARKET__SYMBOLS"),
    (["paper", "--days", "1"], {"RAMPART_SCALING__LADDER": "0.001,0.02"}, "RAMPART_SCALING__LADDER"),
    (["paper", "--days", "1"], {"RAMPART_MARKET__ALLOWED_SYMBOLS": "SOLUSDT"}, "RAMPART_MARKET__ALLOWED_SYMBOLS"),
    (["live", "--poll", "0"], {}, "--poll must be a positive number of seconds"),
    (["live", "--exchange", "sandbox", "--sandbox-url", CLOSED], {}, "live trading refused: NO_GATE"),
    (["sandbox", "--speed", "nan"], {}, "--speed must be more than 0"),
    (["sandbox", "--days", "1e9"], {}, "--days must be more than 0 and at most 366"),
    (["operators", "hash-token"], {}, "give the token on stdin"),
])
@pytest.mark.req("R1.5")
@pytest.mark.req("R2.2")
def test_the_real_command_refuses_with_one_line_and_writes_nothing(
    args: list[str], env: dict[str, str], needle: str, tmp_path: Path
) -> None:
    proc = rampart(args, tmp_path, env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == [], "a refused command must write nothing"


@pytest.mark.req("R1.5")
@pytest.mark.req("R8.5")
def test_a_live_start_refused_by_a_reachable_exchange_writes_no_database_and_no_audit_key(tmp_path: Path) -> None:
    config = SandboxConfig(clock="manual", synthetic_days=2, warmup_days=1)
    with SandboxServer(config) as server:
        proc = rampart(["live", "--exchange", "sandbox", "--sandbox-url", server.url, "--data-dir", "data"], tmp_path,
                       {"RAMPART_API_KEY": DEMO_API_KEY, "RAMPART_API_SECRET": DEMO_API_SECRET})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    # the key was accepted and the exchange answered: only the missing gate refused the start
    assert re.findall(r"\b([A-Z][A-Z_]{3,}):", lines[0]) == ["NO_GATE"], lines[0]
    assert list(tmp_path.iterdir()) == [], "no data dir, no rampart.duckdb, no audit/audit.key"
