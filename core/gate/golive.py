"""May live trading start on this evidence? (SPEC R1.5, R1.6, R1.7)

``go_live`` judges every gate attempt stored for a config hash:

- A rehearsal venue (not real money: the local sandbox, Binance's demo and testnet) keeps the R1.5 rule
  (``check_go_live``): the newest attempt passed and is at most ``gate.max_age_days`` old, whatever its data —
  a synthetic gate is enough to rehearse.
- A real-money venue (``Venue.real_money``) needs a gate proven on real market data and cannot be shopped for:
  1. only attempts of the last ``gate.max_age_days`` count (a pass or a failure expires alike);
  2. only real evidence counts: a replay of recorded candles covering at least ``gate.min_days`` days, or a
     forward record covering ``gate.forward_min_days``; synthetic gates and shorter replays are listed, not used;
  3. every such attempt counts, not only the latest passed: an attempt is set aside only when a *later* attempt
     of the same kind was judged on data containing its whole window (a longer replay, or the forward record
     grown since), so a failure cannot be answered by choosing other candles or another seed;
  4. each standing attempt is judged again at the thresholds in force now (``rejudge``): a gate that passed only
     under relaxed thresholds is refused naming the check and both thresholds;
  5. go-live needs at least one standing attempt and every standing attempt passing now; a refusal says how many
     failed of how many.
- ``gate.require_forward`` (any venue) also needs the newest forward record (on the real market, for real money)
  passing now and recent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config.gate import GateConfig
from core.gate.evidence import describe
from core.gate.verdict import Rejudged, rejudge, threshold_text

Record = Mapping[str, Any]


@dataclass(frozen=True)
class GoLive:
    """The gate's answer for go-live: ``ok``, and the coded lines saying why (one GATE_OK line when ok)."""

    ok: bool
    reasons: tuple[str, ...]

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def _reasons_text(reasons: Any) -> str:
    # The store may hand reasons back as a list or as the JSON/text it was saved as.
    if isinstance(reasons, str):
        return reasons
    return "; ".join(str(r) for r in reasons or ())


def _as_utc(moment: datetime) -> datetime:
    # A naive timestamp is UTC by project convention (a DuckDB TIMESTAMP column comes back naive).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _when(record: Record) -> str:
    created = record.get("created_at")
    return _as_utc(created).strftime("%Y-%m-%d %H:%M UTC") if isinstance(created, datetime) else "an unknown time"


def check_go_live(
    latest: Mapping[str, Any] | None, config_hash: str, now: datetime, cfg: GateConfig
) -> tuple[bool, str]:
    """The rehearsal rule (R1.5): only if ``latest`` (the newest gate record) is for ``config_hash``, passed, and
    is at most ``cfg.max_age_days`` old at ``now``. Returns (allowed, coded reason)."""
    short = config_hash[:8]
    if latest is None:
        return False, f"NO_GATE: no paper validation for config {short}; run `rampart paper` first"
    if latest.get("config_hash") != config_hash:
        other = str(latest.get("config_hash"))[:8]
        return False, (
            f"NO_GATE: no paper validation for config {short} (the latest is for config {other}: "
            "the strategy, its code or its parameters changed); run `rampart paper` first"
        )
    created = latest.get("created_at")
    passed = latest.get("passed")
    if not isinstance(created, datetime) or not isinstance(passed, bool):
        return False, (
            f"GATE_INVALID: the gate record for config {short} lacks passed/created_at; "
            "run `rampart paper` again"
        )
    when = _as_utc(created)
    day = when.strftime("%Y-%m-%d %H:%M UTC")
    if not passed:
        why = _reasons_text(latest.get("reasons")) or "no reason recorded"
        return False, f"GATE_FAILED: paper validation for config {short} failed on {day}: {why}"
    age = _as_utc(now) - when
    if age > timedelta(days=cfg.max_age_days):
        return False, (
            f"GATE_EXPIRED: paper validation for config {short} passed on {day}, {age.days} days ago "
            f"(limit {cfg.max_age_days} days); run `rampart paper` again"
        )
    return True, f"GATE_OK: paper validation for config {short} passed on {day} ({age.days} days ago)"


def go_live(attempts: Sequence[Record], config_hash: str, now: datetime, cfg: GateConfig, *,
            real_money: bool) -> GoLive:
    """Every gate attempt for ``config_hash`` (any order) judged for go-live at ``now`` under ``cfg``, the
    settings in force; ``real_money`` from ``Venue.real_money``. See the module docstring for the rules."""
    mine = sorted((a for a in attempts if a.get("config_hash") == config_hash), key=_created_key)
    if real_money:
        ok, lines = _real_money(mine, config_hash, now, cfg)
    else:
        allowed, line = check_go_live(mine[-1] if mine else None, config_hash, now, cfg)
        ok, lines = allowed, [line]
    if cfg.require_forward:
        forward_ok, line = _forward_required(mine, config_hash, now, cfg, real_money)
        if not forward_ok:
            return GoLive(False, (*(x for x in lines if not ok), line))
        lines.append(line)
    return GoLive(ok, tuple(lines))


def _created_key(record: Record) -> float:
    created = record.get("created_at")
    return _as_utc(created).timestamp() if isinstance(created, datetime) else float("-inf")


def _fresh(record: Record, now: datetime, cfg: GateConfig) -> bool:
    created = record.get("created_at")
    if not isinstance(created, datetime) or not isinstance(record.get("passed"), bool):
        return False
    return _as_utc(now) - _as_utc(created) <= timedelta(days=cfg.max_age_days)


def unusable(record: Record, cfg: GateConfig) -> str | None:
    """Why this attempt is not real-money evidence at ``cfg`` (None when it is): synthetic, no evidence recorded,
    a forward record on a rehearsal market, or fewer days than ``gate.min_days`` / ``gate.forward_min_days``."""
    kind = record.get("evidence")
    if not kind:
        return "no evidence recorded"
    if not record.get("real_data"):
        return "synthetic data" if kind == "synthetic" else f"{kind} on a rehearsal market, not the real one"
    days = record.get("days")
    days = float(days) if isinstance(days, int | float) else 0.0
    need, setting = (cfg.forward_min_days, "gate.forward_min_days") if kind == "forward" else (cfg.min_days,
                                                                                                "gate.min_days")
    if days < need:
        return f"{days:.1f} days of {kind} data (< {setting} {need})"
    return None


def _contains(later: Record, earlier: Record) -> bool:
    """``later`` was judged on data containing ``earlier``'s whole window, with the same kind and symbols."""
    if later.get("evidence") != earlier.get("evidence") or _created_key(later) <= _created_key(earlier):
        return False
    if sorted(later.get("symbols") or ()) != sorted(earlier.get("symbols") or ()):
        return False
    if later.get("venue") != earlier.get("venue"):
        return False
    a0, a1, b0, b1 = (x.get(k) for x in (later, earlier) for k in ("window_start", "window_end"))
    if not all(isinstance(t, datetime) for t in (a0, a1, b0, b1)):
        return False
    return bool(_as_utc(a0) <= _as_utc(b0) and _as_utc(a1) >= _as_utc(b1))  # type: ignore[arg-type]


def standing(eligible: Sequence[Record]) -> list[Record]:
    """The attempts no later attempt of the same kind supersedes (by containing their whole window)."""
    return [a for a in eligible if not any(_contains(b, a) for b in eligible if b is not a)]


def _thresholds(cfg: GateConfig) -> str:
    return (f"win rate {threshold_text('win_rate', cfg.min_win_rate)}, "
            f"Sharpe {threshold_text('sharpe', cfg.min_sharpe)}, "
            f"drawdown {threshold_text('max_drawdown', cfg.max_drawdown)}, "
            f"trades {threshold_text('trades', cfg.min_trades)}")


def _relaxed_line(record: Record, judged: Rejudged, short: str) -> str:
    checks = "; ".join(f"{name} {value:.4g} passed at {threshold_text(name, then)} (recorded) but the threshold in "
                       f"force is {threshold_text(name, now)}" for name, value, then, now in judged.relaxed)
    return (f"GATE_THRESHOLDS: the gate for config {short} of {_when(record)} passed only under relaxed thresholds: "
            f"{checks}; run the gate again at the thresholds in force")


NEEDS_REAL = ("real money needs a gate on real market data: at least {days} days of recorded candles "
              "(`rampart data download`, then `rampart paper --source FILE ...`) or a forward record of {fdays} days "
              "(`rampart paper --forward --exchange binance`, then `rampart gate --forward`)")


def _real_money(mine: list[Record], config_hash: str, now: datetime, cfg: GateConfig) -> tuple[bool, list[str]]:
    short = config_hash[:8]
    if not mine:
        return False, [f"NO_GATE: no paper validation for config {short}; run `rampart paper` first"]
    fresh = [a for a in mine if _fresh(a, now, cfg)]
    needs = NEEDS_REAL.format(days=cfg.min_days, fdays=cfg.forward_min_days)
    total = f"{sum(1 for a in mine if a.get('passed') is True)} of {len(mine)} attempts for this config passed " \
            "(`rampart gate history`)"
    if not fresh:
        newest = mine[-1]
        return False, [f"GATE_EXPIRED: the newest gate for config {short} is of {_when(newest)}, older than "
                       f"gate.max_age_days {cfg.max_age_days}; {total}; {needs}"]
    eligible = [a for a in fresh if unusable(a, cfg) is None]
    if not eligible:
        passed = [a for a in fresh if a.get("passed") is True]
        shown = passed[-1] if passed else fresh[-1]
        verdict = "passed" if shown.get("passed") is True else "failed"
        kinds = sorted({str(unusable(a, cfg)) for a in fresh})
        return False, [f"GATE_NOT_REAL_DATA: the gate for config {short} {verdict} on {_when(shown)} on "
                       f"{unusable(shown, cfg)} ({describe(shown)}); none of the {len(fresh)} attempts of the last "
                       f"{cfg.max_age_days} days is real-money evidence ({'; '.join(kinds)}); {needs}"]
    judged = [(a, rejudge(a, cfg)) for a in standing(eligible)]
    failed = [(a, j) for a, j in judged if not j.passed]
    if not failed:
        newest = judged[-1][0]
        return True, [f"GATE_OK: config {short} passed on real data: {len(judged)} standing attempt(s) of the last "
                      f"{cfg.max_age_days} days, all passing at the thresholds in force ({_thresholds(cfg)}); newest "
                      f"of {_when(newest)}: {describe(newest)}"]
    lines = [_relaxed_line(a, j, short) for a, j in failed if a.get("passed") is True and j.relaxed]
    others = [(a, j) for a, j in failed if not (a.get("passed") is True and j.relaxed)]
    if others:
        a, j = others[-1]
        passing = len(judged) - len(failed)
        lines.append(
            f"GATE_FAILED: {len(failed)} of {len(judged)} standing attempts on real data for config {short} fail at "
            f"the thresholds in force ({passing} pass); every attempt counts, not only the latest passed. Newest "
            f"failure of {_when(a)} on {describe(a)}: {'; '.join(j.reasons)}. A failure stands until a later attempt "
            f"on data containing its window passes or it is older than {cfg.max_age_days} days; or change the "
            f"strategy (a new config hash); {total}")
    return False, lines


def _forward_required(mine: list[Record], config_hash: str, now: datetime, cfg: GateConfig,
                      real_money: bool) -> tuple[bool, str]:
    """gate.require_forward: the newest forward record (the real market's, for real money) passes now, is recent."""
    short = config_hash[:8]
    how = ("run `rampart paper --forward --exchange <venue>` until it covers gate.forward_min_days "
           f"({cfg.forward_min_days}), then `rampart gate --forward`")
    forward = [a for a in mine if a.get("evidence") == "forward" and (a.get("real_data") or not real_money)]
    if not forward:
        where = " on the real market" if real_money else ""
        return False, (f"FORWARD_REQUIRED: gate.require_forward is set and config {short} has no forward record"
                       f"{where}; {how}")
    newest = forward[-1]
    if not _fresh(newest, now, cfg):
        return False, (f"FORWARD_REQUIRED: the newest forward record for config {short} is of {_when(newest)}, older "
                       f"than gate.max_age_days {cfg.max_age_days}; {how}")
    short_of = unusable(newest, cfg) if real_money else _too_short(newest, cfg)
    if short_of is not None:
        return False, f"FORWARD_REQUIRED: the newest forward record for config {short} has {short_of}; {how}"
    judged = rejudge(newest, cfg)
    if not judged.passed:
        was_relaxed = newest.get("passed") is True and judged.relaxed
        relaxed = f" ({_relaxed_line(newest, judged, short)})" if was_relaxed else ""
        return False, (f"FORWARD_REQUIRED: the newest forward record for config {short}, of {_when(newest)}, fails "
                       f"at the thresholds in force: {'; '.join(judged.reasons)}{relaxed}")
    return True, f"FORWARD_OK: the forward record for config {short} of {_when(newest)} passes: {describe(newest)}"


def _too_short(record: Record, cfg: GateConfig) -> str | None:
    days = record.get("days")
    days = float(days) if isinstance(days, int | float) else 0.0
    return None if days >= cfg.forward_min_days else f"{days:.1f} days (< gate.forward_min_days {cfg.forward_min_days})"


__all__ = ["GoLive", "check_go_live", "go_live", "standing", "unusable"]
