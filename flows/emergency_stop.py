"""Emergency stop flow (SPEC R6.1): HALT, cancel every open order, sell Rampart's positions, report.

Talks to the exchange directly with the stored credentials, so it works when the live session is down. A stop
that leaves the account flat ends the run Completed; one that could not (within its deadline) ends it Failed,
named "Not flat", with what is left as the message: run it again (always safe) or act on the exchange.
"""

from typing import Any

from prefect import flow
from prefect.states import State

from core.config import run_overrides
from flows.parameters import Deadline, ExchangeChoice, Text, emergency_run_name, unset
from tasks.artifacts import NOT_FLAT, failed
from tasks.credentials import secure_run
from tasks.emergency import emergency_stop_task


@flow(name="emergency-stop", log_prints=True, retries=0, flow_run_name=emergency_run_name)
def emergency_stop_flow(reason: str, who: str = "prefect", exchange: ExchangeChoice = "", sandbox_url: Text = "",
                        data_dir: Text = "", deadline_s: Deadline = 0) -> dict[str, Any] | State[Any]:
    """Flatten and halt the account, retrying until flat or the deadline; returns the report (``flat`` says
    whether anything is left).

    Args:
        reason: why you stop trading (recorded with the stop, sent in the notification).
        who: your name, recorded as who pressed the stop.
        exchange: the account to flatten (empty: the configured exchange).
        sandbox_url: the sandbox exchange's URL, e.g. http://127.0.0.1:8765 (empty: the configured one).
        data_dir: where the live state and the HALT flag live (empty: the configured data dir).
        deadline_s: give up retrying after this many seconds (0: the configured emergency.deadline_s, 120 s by
            default).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    report = emergency_stop_task(run_overrides(data_dir=unset(data_dir), exchange=unset(exchange),
                                               exchange_url=unset(sandbox_url)), reason, who, unset(deadline_s))
    if report.get("flat"):
        return report
    return failed(NOT_FLAT, report.get("leftovers") or report.get("errors") or ["see the emergency-stop artifact"],
                  report)


if __name__ == "__main__":
    emergency_stop_flow(reason="manual run")
