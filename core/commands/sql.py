"""`rampart sql`: ad-hoc SQL on the trading history, whether or not a session is trading.

The SQL runs on the store's read-only replica (``core.store.replica``), never on the store: a running session keeps
the replica at most ~30 s old and is never made to wait; with no session running, ``rampart sql`` first brings the
replica up to date itself (a short read of what changed). The replica is opened read-only with file access off, so
no statement can change the store or touch a file. Each run says on stderr how fresh the rows are. While a session
trades, the query runs at a lower CPU priority and leaves one core to it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.commands import EXIT_ERROR, EXIT_OK, EXIT_USAGE, fail

FORMATS = ("table", "csv", "json", "jsonl")
SHOWN = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})  # statement types whose rows are printed
STALE_S = 60.0  # a replica older than this while a session runs is worth a warning
STORE_WAIT_S = 10.0  # no session running: how long to wait for another process holding the store
REFRESHER_WAIT_S = 60.0  # ... and for another refresher (a first copy of a big store takes a while)
HELP = """Statements end with ';'. Commands:
  .views            the views for common questions, with what they answer
  .tables           every table and view
  .schema NAME      the columns of a table or view (with their descriptions)
  .fresh            how fresh the rows are
  .help  .quit      (Ctrl-D quits, Ctrl-C cancels the current query)"""

DataDirOpt = Annotated[Path | None, typer.Option(help="where the database is (default ./data)")]


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)


def sql(
    query: Annotated[str | None, typer.Argument(
        help="the SQL (several statements separated by ';'); none: read from stdin, or a prompt on a terminal")]
    = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json (an array of rows) or jsonl")] = "table",
    max_rows: Annotated[int, typer.Option(help="rows a table shows (0: all); csv and json print every row")] = 40,
    refresh: Annotated[bool, typer.Option(
        "--refresh/--no-refresh", help="with no session running, update the replica from the store first")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no freshness line on stderr")] = False,
) -> None:
    """Query the trading history with SQL (DuckDB), safely while a session trades. Views for common questions:
    v_trades, v_daily_pnl, v_open_positions, v_decisions, v_decision_checks, v_alerts (docs/data.md)."""
    from core.config import load_settings, run_overrides
    from core.errors import RampartError

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}", EXIT_USAGE)
    if max_rows < 0:
        raise fail(f"--max-rows must be 0 (all) or more, got {max_rows}", EXIT_USAGE)
    try:
        settings = load_settings(**run_overrides(data_dir=data_dir))
        shell = Shell(settings.data_dir, settings.db_path, fmt, max_rows, refresh, quiet)
        shell.prepare()
    except RampartError as exc:
        raise fail(str(exc)) from None
    if query is not None:
        raise typer.Exit(shell.run_script(query))
    if sys.stdin.isatty():
        raise typer.Exit(shell.interactive())
    raise typer.Exit(shell.run_script(sys.stdin.read()))


@dataclass
class Running:
    """A session trading on this data directory (it publishes the replica)."""

    session_id: str
    pid: int


def running_sessions(data_dir: Path) -> list[Running]:
    """Live and forward paper sessions whose marker names a live process."""
    markers = [data_dir / "live" / "session.json", *sorted((data_dir / "paper-forward").glob("*/session.json"))]
    found = []
    for marker in markers:
        try:
            info = json.loads(marker.read_text())
            pid = int(info["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            continue
        found.append(Running(str(info.get("session_id") or "?"), pid))
    return found


class Shell:
    """One ``rampart sql`` run: keeps the replica fresh, runs statements on it and prints their rows."""

    def __init__(self, data_dir: Path, db_path: Path, fmt: str, max_rows: int, refresh: bool, quiet: bool) -> None:
        from core.store.replica import replica_path

        self.data_dir, self.db_path, self.fmt, self.max_rows = data_dir, db_path, fmt, max_rows
        self.refresh_allowed, self.quiet = refresh, quiet
        self.path = replica_path(db_path)
        self.conn: Any = None
        self.opened: tuple[int, int] | None = None  # (device, inode) of the replica file the connection reads
        self.info: Any = None
        self.running: list[Running] = []
        self._told: tuple[Any, ...] | None = None
        self._niced = False

    # --- the replica -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure a fresh enough replica is open; say how fresh (once per change)."""
        from core.errors import StoreError
        from core.store.replica import refresh, source_stamp

        self.running = running_sessions(self.data_dir)
        note = None
        if not self.running and self.refresh_allowed:
            if not self.db_path.exists():
                raise StoreError(f"no database at {self.db_path} yet: run a backtest, a paper validation or a "
                                 "session first (or pass --data-dir)")
            if self.info is None:
                self._open()
            if self.info is None or self.info.source_stamp != source_stamp(self.db_path):
                self._close()  # never read a file this process may be about to write
                try:
                    if refresh(self.db_path, lock_timeout_s=STORE_WAIT_S, wait_s=REFRESHER_WAIT_S) is None:
                        note = "another process is refreshing the replica; these rows may be older"
                except StoreError as exc:
                    if not self.path.exists():
                        raise
                    note = f"the store could not be read ({exc}); these rows may be older"
        if self.running:
            self._lower_priority()
        if not self.path.exists():
            raise StoreError(f"no replica at {self.path} yet: the running session publishes one within "
                             f"{self._refresh_s():.0f} s of starting; try again shortly")
        self._open()
        self._tell(note)

    def _open(self) -> None:
        from core.store.replica import open_replica, read_info

        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if self.conn is not None and self.opened == (st.st_dev, st.st_ino):
            return
        self._close()
        threads = max(1, (os.cpu_count() or 2) - 1) if self.running else None
        self.conn = open_replica(self.path, threads=threads)
        self.opened = (st.st_dev, st.st_ino)
        self.info = read_info(self.conn)

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self.opened = None, None

    def _lower_priority(self) -> None:
        if not self._niced:
            self._niced = True
            with contextlib.suppress(OSError, AttributeError):
                os.nice(10)

    @staticmethod
    def _refresh_s() -> float:
        from core.store.replica_publisher import REFRESH_S

        return REFRESH_S

    def freshness(self) -> str:
        """One line: as of when the rows are, and why."""
        info = self.info
        if info is None:
            return "replica of unknown age (no replica_info in it)"
        when = info.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        age = max(0.0, (datetime.now(UTC) - info.taken_at).total_seconds())
        if self.running:
            who = ", ".join(f"{r.session_id[:8]} (pid {r.pid})" for r in self.running)
            line = (f"rows as of {when}, {age:.0f} s ago: replica of {self.db_path} kept by the running session "
                    f"{who}, refreshed every {self._refresh_s():.0f} s")
            if age > STALE_S:
                line += (f"\nwarning: the replica is {age:.0f} s old although a session runs; its log says why "
                         "(replica not refreshed: ...)")
            return line
        return f"rows as of {when}: replica of {self.db_path}, up to date with it (no session running)"

    def _tell(self, note: str | None = None) -> None:
        key = (self.opened, bool(self.running), note)
        if self.quiet or key == self._told:
            return
        self._told = key
        typer.echo(self.freshness(), err=True)
        if note:
            typer.echo(f"note: {note}", err=True)

    # --- statements --------------------------------------------------------------------------------------
    def run_script(self, text: str) -> int:
        """Run every statement in ``text``; print the rows of those that return some. 0, or 1 at the first
        error (one line on stderr)."""
        import duckdb

        try:
            statements = self.conn.extract_statements(text)
        except duckdb.Error as exc:
            typer.echo(f"error: {_message(exc)}", err=True)
            return EXIT_ERROR
        if not statements:
            typer.echo("error: no SQL statement given", err=True)
            return EXIT_USAGE
        for statement in statements:
            code = self.run_one(statement.query, show=statement.type.name in SHOWN)
            if code != EXIT_OK:
                return code
        return EXIT_OK

    def run_one(self, statement: str, *, show: bool = True) -> int:
        """Run one statement; print its rows when ``show`` (a query, not a SET or a temp table's creation)."""
        import duckdb

        try:
            relation = self.conn.sql(statement)
            if relation is None or not show:
                return EXIT_OK
            self.print(relation)
        except duckdb.Error as exc:
            typer.echo(f"error: {_message(exc)}", err=True)
            return EXIT_ERROR
        except KeyboardInterrupt:
            self.conn.interrupt()
            typer.echo("cancelled", err=True)
            return EXIT_ERROR
        return EXIT_OK

    def print(self, relation: Any) -> None:
        if self.fmt == "table":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                relation.show(max_rows=self.max_rows or 10**9, max_width=_width())
            typer.echo(out.getvalue().rstrip("\n"))
            return
        import polars as pl

        frame = pl.DataFrame(relation)  # through the Arrow C stream
        if self.fmt == "json":
            typer.echo(frame.write_json())
        elif self.fmt == "jsonl":
            typer.echo(frame.write_ndjson().rstrip("\n"))
        else:
            typer.echo(_flat(frame).write_csv().rstrip("\n"))

    # --- the prompt --------------------------------------------------------------------------------------
    def interactive(self) -> int:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        typer.echo(f"rampart sql on a read-only replica of {self.db_path}. {HELP}", err=True)
        buffer: list[str] = []
        while True:
            try:
                line = input("...> " if buffer else "sql> ")
            except EOFError:
                typer.echo("", err=True)
                return EXIT_OK
            except KeyboardInterrupt:
                buffer = []
                typer.echo("", err=True)
                continue
            if not buffer and line.strip().startswith("."):
                if not self.command(line.strip()):
                    return EXIT_OK
                continue
            buffer.append(line)
            text = "\n".join(buffer).strip()
            if not text.endswith(";"):
                continue
            buffer = []
            self.refresh_quietly()
            self.run_script(text)

    def refresh_quietly(self) -> None:
        """Before each statement: the newest replica (and, with no session running, the store's newest rows)."""
        from core.errors import RampartError

        try:
            self.prepare()
        except RampartError as exc:
            typer.echo(f"warning: {exc}", err=True)

    def command(self, line: str) -> bool:
        """A dot command; False to quit."""
        name, _, arg = line.partition(" ")
        if name in (".quit", ".exit", ".q"):
            return False
        if name == ".help":
            typer.echo(HELP, err=True)
        elif name == ".fresh":
            self.refresh_quietly()
            typer.echo(self.freshness(), err=True)
        elif name == ".views":
            self.run_one("SELECT view_name AS view, comment AS answers FROM duckdb_views() "
                         "WHERE NOT internal AND view_name LIKE 'v\\_%' ESCAPE '\\' ORDER BY view_name")
        elif name == ".tables":
            self.run_one("SELECT table_name AS name, 'table' AS kind FROM duckdb_tables() UNION ALL "
                         "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal ORDER BY kind, name")
        elif name == ".schema" and arg.strip():
            target = arg.strip().rstrip(";").replace("'", "''")
            self.run_one("SELECT column_name AS column, data_type AS type, comment AS meaning FROM duckdb_columns() "
                         f"WHERE table_name = '{target}' ORDER BY column_index")
        else:
            typer.echo(f"unknown command {line!r}; .help lists them", err=True)
        return True


def _message(exc: BaseException) -> str:
    """DuckDB's error as one line, with what to do for the refusals the replica makes on purpose."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "read-only" in low:
        return (f"the replica is read-only: ad-hoc SQL cannot change the store ({text[:160]}); the store changes "
                "only through rampart's own commands")
    if "file system operations are disabled" in low or "external access" in low:
        return ("files cannot be read or written from rampart sql (only the store's tables and views); for "
                f"candle files use duckdb or polars directly ({text[:160]})")
    return text[:500]


def _width() -> int:
    try:
        return max(60, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError):
        return 160


def _flat(frame: Any) -> Any:
    """CSV has no lists or structs: those columns become JSON text."""
    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns([
        pl.Series(name, [None if v is None else json.dumps(v, default=str) for v in frame[name].to_list()],
                  dtype=pl.String) for name in nested]) if nested else frame


__all__ = ["FORMATS", "Running", "Shell", "register", "running_sessions", "sql"]
