"""`rampart gate`: may this configuration go live on this venue, and on what evidence (SPEC R1.5–R1.7).

``rampart gate`` says what the go-live check would answer (exit 0 allowed, 3 refused); ``rampart gate --forward``
judges the forward paper record once it covers ``gate.forward_min_days`` and records it (exit 0 passed, 3 failed or
not long enough yet: it says how many days are covered and how many are needed); ``rampart gate history`` lists every
attempt for the config hash — passed or failed, on what data, at which thresholds, and how each reads at the
thresholds in force now — so "passed 1 of 5" is visible.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.commands import EXIT_OK, ExchangeOpt, SandboxUrlOpt, fail

EXIT_REFUSED = 3  # as `rampart paper`: the gate did not pass

SymbolsOpt = Annotated[str | None, typer.Option(help="comma-separated symbols (default RAMPART_MARKET__SYMBOLS)")]
StrategyOpt = Annotated[str | None, typer.Option(help="the strategy, as for `rampart paper` (default from settings)")]
TimeframeOpt = Annotated[str | None, typer.Option(help="candle size (default from settings)")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="strategy parameter NAME=VALUE, repeatable")]
DataDirOpt = Annotated[Path | None, typer.Option(help="where the database is (default ./data)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def register(app: typer.Typer) -> None:
    gate_app = typer.Typer(help="The go-live gate: the check, the forward record (--forward) and every attempt "
                                "(history).", rich_markup_mode=None)
    gate_app.callback(invoke_without_command=True)(gate)
    gate_app.command("history")(history)
    app.add_typer(gate_app, name="gate")


def _settings(symbols: str | None, strategy: str | None, timeframe: str | None, param: list[str] | None,
              data_dir: Path | None, exchange: str | None, sandbox_url: str | None) -> Any:
    from core.config import load_settings, run_overrides

    params: dict[str, Any] = {}
    for item in param or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise fail(f"--param '{item}' must look like NAME=VALUE, e.g. --param fast=10", 2)
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return load_settings(**run_overrides(symbols, strategy, timeframe, params, data_dir, exchange, sandbox_url))


def gate(ctx: typer.Context,
         forward: Annotated[bool, typer.Option("--forward", help="judge the forward paper record of this config "
                                                                  "on --exchange and record the verdict")] = False,
         symbols: SymbolsOpt = None, strategy: StrategyOpt = None, timeframe: TimeframeOpt = None,
         param: ParamOpt = None, data_dir: DataDirOpt = None, exchange: ExchangeOpt = None,
         sandbox_url: SandboxUrlOpt = None, as_json: JsonOpt = False) -> None:
    """Would `rampart live` accept the gate of this configuration on --exchange? With --forward: judge the forward
    paper record (R1.6) and record it. Exit 0 yes/passed, 3 no/failed/not long enough, 1 error."""
    if ctx.invoked_subcommand is not None:
        return
    from core.build import config_hash
    from core.gate import go_live
    from core.store import Store
    from core.store.gates import gate_attempts
    from core.venue import venue_for

    settings = _settings(symbols, strategy, timeframe, param, data_dir, exchange, sandbox_url)
    venue, chash = venue_for(settings.exchange), config_hash(settings)
    store = Store(settings.db_path)
    if forward:
        _forward(store, settings, venue, chash, as_json)
    verdict = go_live(gate_attempts(store, chash), chash, datetime.now(UTC), settings.gate,
                      real_money=venue.real_money)
    if as_json:
        typer.echo(json.dumps({"config_hash": chash, "venue": venue.name, "ok": verdict.ok,
                               "reasons": list(verdict.reasons)}))
    else:
        typer.echo(f"Go-live on {venue.describe()} for config {chash[:8]}: {'allowed' if verdict.ok else 'REFUSED'}")
        for line in verdict.reasons:
            typer.echo(f"  {line}")
    raise typer.Exit(EXIT_OK if verdict.ok else EXIT_REFUSED)


def _forward(store: Any, settings: Any, venue: Any, chash: str, as_json: bool) -> None:
    from core.gate.forward import evaluate_forward
    from core.reporting.paper_report import format_verdict

    out = evaluate_forward(store, settings, venue, chash)
    if as_json:
        typer.echo(json.dumps({
            "status": out.status, "passed": out.passed, "message": out.message, "config_hash": chash,
            "venue": venue.name, "covered_days": out.covered_days, "needed_days": out.needed_days,
            "sessions": out.sessions, "reasons": list(out.verdict.reasons) if out.verdict else [],
            "metrics": out.metrics.to_dict() if out.metrics else None,
            "record_id": out.record["id"] if out.record else None}, default=str))
    else:
        typer.echo(out.message)
        if out.verdict is not None and out.metrics is not None and out.evidence is not None:
            table = format_verdict(out.metrics, out.verdict).splitlines()
            typer.echo(f"Forward gate: {'PASSED' if out.passed else 'FAILED'}   (config {chash[:8]})")
            typer.echo("\n".join(table[1:]))
            typer.echo(f"Evidence {out.evidence.describe()}")
            typer.echo(f"Recorded gate_results {out.record['id'] if out.record else '-'} in {settings.db_path}")
    raise typer.Exit(EXIT_OK if out.passed else EXIT_REFUSED)


def history(symbols: SymbolsOpt = None, strategy: StrategyOpt = None, timeframe: TimeframeOpt = None,
            param: ParamOpt = None, data_dir: DataDirOpt = None, exchange: ExchangeOpt = None,
            sandbox_url: SandboxUrlOpt = None,
            config: Annotated[str | None, typer.Option(help="a config hash (or its first characters) instead of "
                                                            "the one the options give")] = None,
            as_json: JsonOpt = False) -> None:
    """Every gate attempt for the config hash, oldest first: verdict then and at the thresholds in force now, the
    data it was judged on, whether it is real-money evidence, and the go-live answer on --exchange."""
    from core.build import config_hash
    from core.gate import go_live
    from core.store import Store
    from core.store.gates import config_hashes, gate_attempts
    from core.venue import venue_for

    settings = _settings(symbols, strategy, timeframe, param, data_dir, exchange, sandbox_url)
    venue, store = venue_for(settings.exchange), Store(settings.db_path)
    chash = config_hash(settings)
    if config is not None:
        found = config_hashes(store, config.strip().lower())
        if len(found) != 1:
            raise fail(f"--config {config} matches {len(found)} config hashes with a gate record"
                       + (f" ({', '.join(h[:12] for h in found[:5])}); give more characters" if found else
                          "; see `rampart gate history` without --config for this configuration's"))
        chash = found[0]
    now = datetime.now(UTC)
    rows = [attempt_row(a, settings.gate) for a in gate_attempts(store, chash)]
    verdict = go_live(gate_attempts(store, chash), chash, now, settings.gate, real_money=venue.real_money)
    if as_json:
        typer.echo(json.dumps({"config_hash": chash, "attempts": rows, "passed": sum(r["passed"] for r in rows),
                               "go_live": {"venue": venue.name, "ok": verdict.ok, "reasons": list(verdict.reasons)}},
                              default=str))
        raise typer.Exit(EXIT_OK)
    for line in render_history(chash, rows):
        typer.echo(line)
    typer.echo(f"Go-live on {venue.describe()}: {'allowed' if verdict.ok else 'REFUSED'}")
    for line in verdict.reasons:
        typer.echo(f"  {line}")
    raise typer.Exit(EXIT_OK)


def attempt_row(record: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """One attempt as the history shows it: when, verdict then and now, its evidence, the thresholds that differ."""
    from core.gate import rejudge
    from core.gate.evidence import describe
    from core.gate.golive import unusable
    from core.gate.verdict import THRESHOLD_OF

    judged = rejudge(record, cfg)
    stored = record.get("thresholds")
    recorded: dict[str, Any] = stored if isinstance(stored, dict) else {}
    differ = {name: {"then": recorded.get(name), "now": getattr(cfg, name)}
              for name in (*THRESHOLD_OF.values(), "period")
              if name in recorded and recorded.get(name) != getattr(cfg, name)}
    reasons = record.get("reasons")
    return {"id": record.get("id"), "created_at": record.get("created_at"), "passed": record.get("passed") is True,
            "passes_now": judged.passed, "evidence": record.get("evidence"), "real_data": record.get("real_data"),
            "describe": describe(record), "real_money_evidence": unusable(record, cfg) is None,
            "not_evidence_because": unusable(record, cfg), "thresholds_differ": differ,
            "reasons": reasons if isinstance(reasons, list) else [reasons] if reasons else [],
            "reasons_now": list(judged.reasons), "session_id": record.get("session_id")}


def render_history(chash: str, rows: list[dict[str, Any]]) -> list[str]:
    """The history as lines for the terminal: a count line, then each attempt with its evidence and reasons."""
    if not rows:
        return [f"Gate history for config {chash[:8]}: no attempt yet (run `rampart paper`)"]
    passed = sum(r["passed"] for r in rows)
    real = [r for r in rows if r["real_money_evidence"]]
    lines = [f"Gate history for config {chash[:8]}: passed {passed} of {len(rows)} attempts; as real-money evidence "
             f"at the settings in force: {sum(r['passes_now'] for r in real)} of {len(real)} pass now"]
    for r in rows:
        when = r["created_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(r["created_at"],
                                                                                       datetime) else "?"
        now = "passes now" if r["passes_now"] else "fails now"
        use = "real-money evidence" if r["real_money_evidence"] else f"not real-money evidence: " \
                                                                     f"{r['not_evidence_because']}"
        lines.append(f"{when}  {'PASSED' if r['passed'] else 'FAILED'}  ({now}; {use})")
        lines.append(f"    {r['describe']}")
        for name, pair in r["thresholds_differ"].items():
            lines.append(f"    judged at {name} {pair['then']} (in force now: {pair['now']})")
        for reason in r["reasons_now"] or r["reasons"]:
            lines.append(f"    - {reason}")
    return lines
