"""Emergency stop flow (SPEC R6.1): HALT, cancel every open order, sell Rampart's positions, report.

Talks to the exchange directly with the stored credentials, so it works when the live session is down."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.credentials import secure_run
from tasks.emergency import emergency_stop_task


@flow(name="emergency-stop", log_prints=True, retries=0)
def emergency_stop_flow(reason: str, who: str = "prefect", exchange: str | None = None,
                        sandbox_url: str | None = None, data_dir: str | None = None,
                        deadline_s: float | None = None) -> dict[str, Any]:
    """Flatten and halt the account, retrying until flat or ``deadline_s`` (default ``emergency.deadline_s``);
    returns the report (``flat`` says whether anything is left)."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    return emergency_stop_task(run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url), reason,
                               who, deadline_s)


if __name__ == "__main__":
    emergency_stop_flow(reason="manual run")
