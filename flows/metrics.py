"""The 15-minute metrics flow (SPEC R3.3): recompute the live metric set from DuckDB, store it, publish it.

Scheduled every 900 s by the ``metrics`` deployment in prefect.yaml."""

from typing import Any

from prefect import flow

from core.config import run_overrides
from flows.parameters import Text, dated_run_name, unset
from tasks.credentials import secure_run
from tasks.metrics import publish_snapshots_task, record_snapshots_task


@flow(name="metrics", log_prints=True, retries=0, flow_run_name=dated_run_name("metrics"))
def metrics_flow(data_dir: Text = "") -> dict[str, Any]:
    """Snapshots of the live metrics into metrics_snapshots and the ``rampart-metrics`` artifact.

    Args:
        data_dir: where the database is (empty: the configured data dir, ./data by default).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    rows = record_snapshots_task(run_overrides(data_dir=unset(data_dir)))
    return publish_snapshots_task(rows)


if __name__ == "__main__":
    metrics_flow()
