"""Settings of the JSON-lines logs under ``<data_dir>/logs`` (``RAMPART_LOGS__*``): how big they grow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LogsConfig(BaseModel):
    """Size rotation of the decision log (``decisions.jsonl``). Its rows are also in DuckDB ``decisions``, so old
    files may go; the audit journal keeps every file (``RAMPART_AUDIT__ROTATE_MB``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decisions_rotate_mb: float = Field(50.0, gt=0, le=100_000, description="start a new decisions.jsonl once the "
                                       "current one reaches this many MiB")
    decisions_keep_files: int = Field(10, ge=0, le=100_000, description="rotated decision logs kept, the oldest "
                                      "deleted first (0 = keep them all)")
