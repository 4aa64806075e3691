"""Credential and audit settings (``RAMPART_CREDENTIALS__*``, ``RAMPART_AUDIT__*``) (R8)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CredentialsConfig(BaseModel):
    """Where the exchange keys come from; they are read only when a live session or emergency stop starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["env", "dir", "prefect"] = Field(
        "env", description="env: RAMPART_API_KEY/RAMPART_API_SECRET; dir: files in secrets_dir; prefect: Secret blocks")
    secrets_dir: Path | None = Field(None, description="dir provider: folder holding api_key and api_secret files")
    prefect_key_block: str = Field("rampart-api-key", description="prefect provider: Secret block with the key")
    prefect_secret_block: str = Field("rampart-api-secret", description="prefect provider: Secret block, secret")


class AuditConfig(BaseModel):
    """The tamper-evident journal (R8.5); its HMAC key comes from RAMPART_AUDIT_KEY or the secrets dir."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="keep the audit journal (live, emergency stop, overrides, rotation)")
    path: Path | None = Field(None, description="journal file (default <data_dir>/audit/audit.jsonl)")
    anchor_every: int = Field(50, ge=1, le=100_000, description="anchor the latest hash every N records")
