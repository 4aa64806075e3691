"""Notifications (issue 5, R3.2, R6.5): the DuckDB outbox delivered to a local Slack-compatible server through the
real slack-sdk.

Every test talks HTTP to ``tests/slack_server.py`` on 127.0.0.1. The live-session test trades on the manual-clock
sandbox through the real ccxt client (``tests/sandbox_rig.py``) with the notifier thread running, so deliveries
happen while the session trades.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings, load_settings
from core.control.emergency import emergency_stop
from core.control.overrides import apply_override
from core.market import generate
from core.notify import Notification, Notifier, deliver_now, deliver_pending, enqueue, notify
from core.notify.handoff import Handoff
from core.notify.outbox import rows as outbox_rows
from core.redact import register_secret
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.validation import run_paper_validation
from core.venue import sandbox_at
from tests.sandbox_rig import BTC, ETH, Rig, enter, leave, sandbox, settings_for
from tests.slack_server import CHANNEL_ID, CHANNEL_NAME, TOKEN, SlackServer


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


def slack_config(slack: SlackServer, **kw: Any) -> dict[str, Any]:
    """Fast retries so outages play out in seconds; everything else as configured in production."""
    return {"slack_token": TOKEN, "slack_channel": CHANNEL_NAME, "slack_base_url": slack.api_url, "backoff_s": 0.2,
            "max_backoff_s": 1.0, "timeout_s": 2, "batch_s": 0.2, "poll_s": 0.5, "flush_s": 5.0, **kw}


def with_slack(tmp_path: Path, slack: SlackServer, **kw: Any) -> Settings:
    return load_settings(data_dir=tmp_path, notify=slack_config(slack, **kw))


def note(key: str, *, urgent: bool = False, body: str = "") -> Notification:
    return Notification(key=key, kind="test", severity="critical" if urgent else "info", title=f"Test {key}",
                        body=body or f"body of {key}", fields={"Key": key, "Price": 41_234.5}, urgent=urgent)


def outbox(settings: Settings) -> dict[str, dict[str, Any]]:
    """key -> row, in the order stored (the outbox's own read: safe beside a running notifier thread)."""
    return {r["notification_id"]: r for r in outbox_rows(Store(settings.db_path))}


def settled(settings: Settings, key: str, attempts: int) -> dict[str, dict[str, Any]]:
    """The outbox once ``key`` has had ``attempts`` attempts and is not in flight (a pass has recorded them)."""
    seen: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        seen.update(outbox(settings))
        row = seen[key]
        return bool(row["attempts"] >= attempts and "in flight" not in (row["last_error"] or ""))

    wait_until(check, what=f"{attempts} recorded attempts of {key}")
    return seen


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def texts(message: dict[str, Any]) -> str:
    """Everything a reader sees in a posted message: fallback text and all block text."""
    return message["text"] + "\n" + json.dumps(message["blocks"], ensure_ascii=False)


# --- a live session on the sandbox: one message per entry and per exit -----------------------------------------
@pytest.mark.req("R3.2")
def test_a_live_session_on_the_sandbox_sends_exactly_one_message_per_entry_and_per_exit(
    tmp_path: Path, creds: None, slack: SlackServer
) -> None:
    btc = [BTC, BTC, BTC * 1.01, BTC * 1.01, BTC * 1.01, BTC * 1.01, BTC * 1.01, BTC * 1.01, BTC * 1.01, BTC * 1.01]
    eth = [ETH, ETH, ETH, ETH, ETH, ETH, ETH * 0.99, ETH * 0.99, ETH * 0.99, ETH * 0.99]
    # the stop's last delivery pass is bounded by flush_s: ample here, so a loaded machine does not cut it short
    settings = settings_for(tmp_path, notify=slack_config(slack, flush_s=60.0))
    with sandbox(btc, eth) as server:
        rig = Rig(server, settings)
        sid = rig.session.session_id
        rig.bar(BTCUSDT=enter(0.02, "cue entry btc"))
        rig.bar()  # filled and booked: the entry message
        rig.bar(BTCUSDT=leave("cue exit btc"))
        rig.bar()  # the exit fills: a trade, the exit message
        rig.bar(ETHUSDT=enter(0.02, "cue entry eth"))
        rig.bar()
        rig.bar(ETHUSDT=leave("cue exit eth"))
        rig.bar()
        rig.bar(BTCUSDT=enter(0.02, "cue entry btc again"))
        rig.bar()  # still open at stop: an entry without an exit
        wait_until(lambda: any(k.startswith("entry:") for k in slack.posted_keys()), what="a message while trading")
        rig.stop()
    store = Store(settings.db_path)
    entries = store.query("select client_order_id, symbol, filled_qty, avg_fill_price from orders where "
                          "session_id = ? and tag = 'entry' and status = 'filled' order by created_at", [sid])
    trades = store.query("select * from trades where session_id = ? order by exit_time", [sid])
    assert entries.height == 3 and trades.height == 2
    keys = slack.posted_keys()
    assert sorted(k for k in keys if k.startswith("entry:")) == sorted(
        f"entry:{sid}:{cid}" for cid in entries["client_order_id"])
    assert sorted(k for k in keys if k.startswith("exit:")) == sorted(f"exit:{sid}:{t}" for t in trades["trade_id"])
    assert len(keys) == len(set(keys)), "a message was sent twice"
    # what a trader reads: entry with price, stop and risk; exit with price, net P&L and reason
    first = entries.row(0, named=True)
    msg = texts(slack.message(f"entry:{sid}:{first['client_order_id']}"))
    assert "Entry BTCUSDT: bought" in msg and f"{first['avg_fill_price']:,.2f}" in msg
    assert f"{BTC * 0.98:,.2f}" in msg and "Risk" in msg and "USDT" in msg and "cue entry btc" in msg
    eth_trade = trades.filter(trades["symbol"] == "ETHUSDT").row(0, named=True)
    msg = texts(slack.message(f"exit:{sid}:{eth_trade['trade_id']}"))
    assert "Exit ETHUSDT: sold" in msg and f"{eth_trade['net_pnl']:+,.2f} USDT" in msg and "cue exit eth" in msg
    assert eth_trade["net_pnl"] < 0 and f"{eth_trade['return_pct']:+.2%}" in msg
    # everything the session stored went out, in the order stored: starts and stops included
    rows = {k: r for k, r in outbox(settings).items() if k.split(":")[0] in ("entry", "exit", "event")}
    assert all(r["status"] == "delivered" for r in rows.values()), {k: r["status"] for k, r in rows.items()}
    assert [k for k in outbox(settings) if k in set(keys)] == keys
    assert any(r["title"] == "Live session started" for r in rows.values())
    assert any(r["title"] == "Live session stopped" for r in rows.values())


# --- outages: nothing lost, everything once, in order ----------------------------------------------------------
@pytest.mark.req("R3.2")
def test_with_slack_down_then_failing_nothing_is_lost_and_everything_arrives_once_in_order_when_it_is_back(
    tmp_path: Path, slack: SlackServer
) -> None:
    settings = with_slack(tmp_path, slack)
    store = Store(settings.db_path)
    notifier = Notifier(settings, store).start()
    try:
        slack.down()  # connection refused
        keys = [f"n{i}" for i in range(1, 6)]
        for key in keys:
            notify(store, note(key))
        before = settled(settings, "n1", attempts=2)
        after = settled(settings, "n1", attempts=3)
        assert all(r["status"] == "pending" for r in after.values())
        assert after["n1"]["next_attempt_at"] > before["n1"]["next_attempt_at"]  # backing off
        assert all(after[k]["next_attempt_at"] >= after["n1"]["next_attempt_at"] for k in keys)  # queued behind
        assert "Connection refused" in after["n1"]["last_error"]
        slack.fail(503)  # back up, answering, but 5xx
        slack.up()
        wait_until(lambda: len(slack.posts()) >= 2, what="posts answered 503")
        assert {p.status for p in slack.posts()} == {503} and slack.messages == []
        assert all(r["status"] == "pending" for r in outbox(settings).values())
        slack.recover()
        wait_until(lambda: len(slack.posted_keys()) == 5, what="all five messages")
        time.sleep(0.5)  # any duplicate would arrive now
    finally:
        notifier.stop()
    assert slack.posted_keys() == keys  # once each, in the order stored
    rows = outbox(settings)
    assert all(r["status"] == "delivered" and r["channel"] == CHANNEL_ID and r["message_ts"] for r in rows.values())
    assert rows["n1"]["attempts"] >= 5


@pytest.mark.req("R3.2")
def test_a_message_whose_response_was_lost_is_found_in_the_channel_and_not_posted_again(
    tmp_path: Path, slack: SlackServer
) -> None:
    settings = with_slack(tmp_path, slack)
    store = Store(settings.db_path)
    notify(store, note("first"))
    assert deliver_pending(settings, store).delivered == ["first"]  # Slack's channel id is known from here on
    slack.lose_responses(1)  # posted, then the connection drops before the answer
    notify(store, note("lost"))
    report = deliver_pending(settings, store)
    assert report.retrying == ["lost"] and outbox(settings)["lost"]["last_error"].startswith("UNCONFIRMED")
    wait_until(lambda: bool(deliver_pending(settings, store).delivered), what="the retry")
    assert slack.posted_keys() == ["first", "lost"]
    assert [p.key for p in slack.posts()] == ["first", "lost"]  # the retry looked instead of posting again
    assert any(s.method == "conversations.history" for s in slack.seen)
    row = outbox(settings)["lost"]
    assert row["status"] == "delivered" and row["message_ts"] == slack.message("lost")["ts"]


# --- rate limits ----------------------------------------------------------------------------------------------
@pytest.mark.req("R3.2")
def test_a_429_with_retry_after_is_honoured_before_the_next_request(tmp_path: Path, slack: SlackServer) -> None:
    settings = with_slack(tmp_path, slack, backoff_s=0.05)  # the backoff alone would retry far sooner
    store = Store(settings.db_path)
    slack.rate_limit(retry_after=2, times=1)
    notifier = Notifier(settings, store).start()
    try:
        notify(store, note("r1"), note("r2"))
        wait_until(lambda: slack.posted_keys() == ["r1", "r2"], what="both messages after the rate limit")
    finally:
        notifier.stop()
    limited = [s for s in slack.seen if s.status == 429]
    assert len(limited) == 1
    later = [s for s in slack.seen if s.at > limited[0].at]
    assert later and min(s.at for s in later) >= limited[0].at + 2.0, "a request came before Retry-After passed"
    assert outbox(settings)["r1"]["attempts"] == 2 and outbox(settings)["r2"]["attempts"] == 1


# --- no Slack configured --------------------------------------------------------------------------------------
@pytest.mark.req("R3.2")
def test_without_slack_notifications_are_logged_once_and_stay_in_the_outbox_and_paper_validation_calls_nothing(
    tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    # the server's URL is set, but no token: not configured, so it must never be called
    settings = load_settings(data_dir=tmp_path, notify={"slack_base_url": slack.api_url, "slack_channel": "#x"},
                             gate={"min_win_rate": 0.0, "min_sharpe": -10.0, "max_drawdown": 1.0, "min_trades": 1},
                             strategy={"name": "sma_cross", "params": {"fast": 10}}, market={"timeframe": "1h"})
    store = Store(settings.db_path)
    with caplog.at_level(logging.WARNING, logger="rampart.notify"):
        notify(store, note("quiet-1"))
        out = run_paper_validation(settings, "synthetic", days=20, seed=3)
        assert deliver_pending(settings, store).configured is False
        assert deliver_now(settings, store).configured is False
        notifier = Notifier(settings, store).start()  # refuses to start a thread without Slack
        assert not notifier.alive
    assert slack.seen == []  # no network call at all
    logged = [r.getMessage() for r in caplog.records if r.name == "rampart.notify"]
    assert sum("Test quiet-1" in m for m in logged) == 1
    assert sum("Paper gate PASSED" in m for m in logged) == 1
    rows = outbox(settings)
    assert {k: (r["status"], r["attempts"]) for k, r in rows.items()} == {
        "quiet-1": ("pending", 0), f"gate:{out.session_id}": ("pending", 0)}
    # once Slack is configured, what waited in the outbox goes out
    report = deliver_pending(with_slack(tmp_path, slack), store)
    assert sorted(report.delivered) == sorted(rows)
    msg = texts(slack.message(f"gate:{out.session_id}"))
    assert "Paper gate PASSED: sma_cross" in msg and "Win rate" in msg and "Sharpe" in msg


# --- urgent: emergency stop -----------------------------------------------------------------------------------
@pytest.mark.req("R6.5")
@pytest.mark.req("R3.2")
def test_the_emergency_stop_is_delivered_immediately_from_the_command_process(
    tmp_path: Path, creds: None, slack: SlackServer
) -> None:
    settings = load_settings(data_dir=tmp_path, market={"timeframe": "1m"}, notify=slack_config(slack))
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 0.5, 11)
    with SandboxServer(SandboxConfig(source=tuple(sets), speed=120.0, start=sets[0].frame["ts"][60])) as exchange:
        report = emergency_stop(settings, "test: exchange outage", "tester", sandbox_at(exchange.url))
    # no notifier runs in this process: the message is in Slack when the command returns
    [key] = [k for k in slack.posted_keys() if k.startswith("emergency:")]
    msg = texts(slack.message(key))
    assert "EMERGENCY STOP" in msg and "tester" in msg and "test: exchange outage" in msg and "HALTED" in msg
    assert "Orders cancelled" in msg and "Positions sold" in msg
    row = outbox(settings)[key]
    assert row["urgent"] and row["severity"] == "critical" and row["status"] == "delivered"
    assert all("notification" not in e for e in report.errors)


@pytest.mark.req("R6.5")
@pytest.mark.req("R3.2")
def test_an_urgent_notification_skips_the_batching_of_a_running_notifier(tmp_path: Path, slack: SlackServer) -> None:
    settings = with_slack(tmp_path, slack, batch_s=30.0, poll_s=60.0)
    store = Store(settings.db_path)
    notifier = Notifier(settings, store).start()
    try:
        wait_until(lambda: notifier.passes >= 1, what="the notifier's first pass")
        notify(store, note("routine"))
        time.sleep(0.5)
        assert slack.posted_keys() == []  # waiting for its 30 s batch
        notify(store, note("halt", urgent=True))
        wait_until(lambda: "halt" in slack.posted_keys(), timeout=10, what="the urgent message")
    finally:
        notifier.stop(flush=False)
    assert slack.posted_keys() == ["routine", "halt"]  # the pass it triggered sent what was waiting, in order


@pytest.mark.req("R3.2")
def test_a_send_in_progress_when_the_session_stops_is_recorded_as_delivered(tmp_path: Path, slack: SlackServer) -> None:
    """The live session's notifier hands its outbox writes to the trading thread. Stopping while a post is on the
    wire must let that pass record it: otherwise the row stays claimed, undelivered, although Slack has it."""
    settings = with_slack(tmp_path, slack, flush_s=30.0)
    store = Store(settings.db_path)
    handoff = Handoff()
    notifier = Notifier(settings, store, handoff=handoff).start()
    slack.hold_posts()

    def wait_draining(check: Callable[[], bool], what: str) -> None:
        def drained() -> bool:
            handoff.drain()  # this test thread plays the trading thread
            return check()
        wait_until(drained, what=what)

    notify(store, note("on the wire"))
    wait_draining(lambda: slack.posts_waiting() == 1, "the post to reach Slack")

    def release_once_stopping() -> None:
        deadline = time.monotonic() + 20
        while notifier.alive and not notifier.stopping and time.monotonic() < deadline:
            time.sleep(0.01)
        slack.release_posts()

    releaser = threading.Thread(target=release_once_stopping, daemon=True)
    releaser.start()
    notifier.stop(flush=True)
    releaser.join(timeout=5)
    assert slack.posted_keys() == ["on the wire"]
    row = outbox(settings)["on the wire"]
    assert row["status"] == "delivered" and row["attempts"] == 1, row


# --- dedupe, refusals, overrides, redaction ---------------------------------------------------------------------
@pytest.mark.req("R3.2")
def test_the_same_key_twice_is_one_row_one_log_line_and_one_message(
    tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_slack(tmp_path, slack)
    store = Store(settings.db_path)
    with caplog.at_level(logging.WARNING, logger="rampart.notify"):
        notify(store, note("same"))
        notify(store, note("same"), note("same"))
        assert enqueue(store, [note("same")]) == 0
    assert sum("Test same" in r.getMessage() for r in caplog.records) == 1
    assert list(outbox(settings)) == ["same"]
    assert deliver_pending(settings, store).delivered == ["same"]
    notify(store, note("same"))  # replayed after delivery
    assert deliver_pending(settings, store).delivered == []
    assert slack.posted_keys() == ["same"]


@pytest.mark.req("R3.2")
def test_a_message_slack_refuses_is_retried_as_plain_text_and_one_refused_for_good_does_not_block_others(
    tmp_path: Path, slack: SlackServer
) -> None:
    settings = with_slack(tmp_path, slack, max_attempts=2, backoff_s=0.05)
    store = Store(settings.db_path)
    slack.refuse_blocks(1)
    notify(store, note("blocks"))
    assert deliver_pending(settings, store).retrying == ["blocks"]
    wait_until(lambda: deliver_pending(settings, store).delivered == ["blocks"], what="the plain retry")
    plain = slack.message("blocks")
    assert plain["blocks"] == [] and "Test blocks" in plain["text"] and "Key: blocks" in plain["text"]
    slack.refuse_key("broken")  # refused as blocks and as plain text: failed after max_attempts
    notify(store, note("broken"), note("after"))
    first = deliver_pending(settings, store)
    assert first.retrying == ["broken"] and first.delivered == ["after"]  # the refused one blocks nothing
    wait_until(lambda: deliver_pending(settings, store).failed == ["broken"], what="the second refusal")
    row = outbox(settings)["broken"]
    assert row["status"] == "failed" and row["attempts"] == 2 and "msg_too_long" in row["last_error"]
    assert slack.posted_keys() == ["blocks", "after"]


@pytest.mark.req("R3.2")
@pytest.mark.req("R6.3")
def test_an_override_from_the_command_line_is_stored_and_sent_at_once(tmp_path: Path, slack: SlackServer) -> None:
    settings = with_slack(tmp_path, slack)
    result = apply_override(settings, "resume", None, "back to work")  # refused: no token
    assert not result.accepted
    [key] = slack.posted_keys()
    msg = texts(slack.message(key))
    assert key.startswith("override:") and "Override REFUSED: resume" in msg and "back to work" in msg
    assert outbox(settings)[key]["status"] == "delivered"


@pytest.mark.req("R8.2")
@pytest.mark.req("R3.2")
def test_no_secret_reaches_slack_the_outbox_or_the_log(
    tmp_path: Path, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_slack(tmp_path, slack)
    store = Store(settings.db_path)
    secret = "Zq8vR2mN5kT1wX7yB4cE"
    register_secret(secret)
    with caplog.at_level(logging.DEBUG):
        notify(store, Notification(key="leak", kind="test", severity="error", title=f"failure with {secret}",
                                   body=f"url?signature=deadbeefdeadbeefdeadbeef token={TOKEN}",
                                   fields={"Key": secret}))
        assert deliver_pending(settings, store).delivered == ["leak"]
    sent = json.dumps(slack.messages)
    stored = json.dumps(outbox(settings)["leak"], default=str)
    for where in (sent, stored, caplog.text):
        assert secret not in where and TOKEN not in where and "deadbeefdeadbeef" not in where
    assert "***" in sent

