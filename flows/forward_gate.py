"""Forward gate flow (R1.6): judge the forward paper record of a strategy on a venue once it covers
``gate.forward_min_days``, record the verdict and publish it. Schedule it beside the ``paper-forward`` deployment
(e.g. daily), or call ``forward_gate_task`` as a step of another flow.

A judged record that fails the gate ends the run Failed ("Gate failed", the reasons as the message); a record too
short to judge yet ends Completed with status ``short`` (or ``none``)."""

from typing import Any

from prefect import flow
from prefect.states import State

from core.config import run_overrides
from flows.parameters import (
    NO_PARAMS,
    ExchangeChoice,
    Params,
    StrategyChoice,
    Text,
    TimeframeChoice,
    live_run_name,
    unset,
)
from tasks.artifacts import GATE_FAILED, failed
from tasks.credentials import secure_run
from tasks.gate import forward_gate_task, publish_forward_gate_task


@flow(name="forward-gate", log_prints=True, retries=0, flow_run_name=live_run_name)
def forward_gate(exchange: ExchangeChoice = "", sandbox_url: Text = "", symbols: Text = "",
                 strategy: StrategyChoice = "", timeframe: TimeframeChoice = "", params: Params = NO_PARAMS,
                 data_dir: Text = "") -> dict[str, Any] | State[Any]:
    """The verdict as `rampart gate --forward` gives it: status, passed, message, days covered and needed.

    Args:
        exchange: the venue the forward paper sessions ran on (empty: the configured exchange).
        sandbox_url: the sandbox exchange's URL, e.g. http://127.0.0.1:8765 (empty: the configured one).
        symbols: comma-separated, as the forward sessions traded them (empty: the configured ones).
        strategy: the strategy the forward sessions ran (empty: the configured one, mean_reversion by default).
        timeframe: the bar size (empty: the configured one, 1h by default).
        params: strategy parameters as JSON, the same as the forward sessions'.
        data_dir: where the database is (empty: the configured data dir, ./data by default).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    verdict = forward_gate_task(run_overrides(unset(symbols), unset(strategy), unset(timeframe), params,
                                              unset(data_dir), unset(exchange), unset(sandbox_url)))
    publish_forward_gate_task(verdict)
    if verdict["status"] == "judged" and not verdict["passed"]:
        return failed(GATE_FAILED, verdict["reasons"] or [verdict["message"]], verdict)
    return verdict


if __name__ == "__main__":
    forward_gate()
