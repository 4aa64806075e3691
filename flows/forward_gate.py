"""Forward gate flow (R1.6): judge the forward paper record of a strategy on a venue once it covers
``gate.forward_min_days``, record the verdict and publish it. Schedule it beside the ``paper-forward`` deployment
(e.g. daily), or call ``forward_gate_task`` as a step of another flow."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.credentials import secure_run
from tasks.gate import forward_gate_task, publish_forward_gate_task


@flow(name="forward-gate", log_prints=True, retries=0)
def forward_gate(exchange: str | None = None, sandbox_url: str | None = None, symbols: str | None = None,
                 strategy: str | None = None, timeframe: str | None = None, params: dict[str, Any] | None = None,
                 data_dir: str | None = None) -> dict[str, Any]:
    """The verdict as `rampart gate --forward` gives it: status, passed, message, days covered and needed."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    verdict = forward_gate_task(run_overrides(symbols, strategy, timeframe, params, data_dir, exchange, sandbox_url))
    publish_forward_gate_task(verdict)
    return verdict


if __name__ == "__main__":
    forward_gate()
