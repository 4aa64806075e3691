"""Credential and audit settings (``RAMPART_CREDENTIALS__*``, ``RAMPART_AUDIT__*``) (R8)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CredentialsConfig(BaseModel):
    """Where the exchange keys come from (R8.1); they are read only when a live session, an emergency stop or a
    key rotation starts — never in paper mode. Only places are configured here, never the keys themselves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["env", "dir", "prefect"] = Field(
        "env", description="env: RAMPART_API_KEY/RAMPART_API_SECRET; dir: files in secrets_dir; prefect: Secret blocks")
    secrets_dir: Path | None = Field(None, description="dir provider: folder holding api_key and api_secret files")
    env_file: Path = Field(Path(".env"), description="env provider: dotenv file read when the variables are unset")
    prefect_key_block: str = Field("rampart-api-key", min_length=1, description="prefect provider: Secret block "
                                   "with the key")
    prefect_secret_block: str = Field("rampart-api-secret", min_length=1, description="prefect provider: Secret "
                                      "block with the secret")
    check_every_polls: int = Field(40, ge=1, le=1_000_000, description="a live session re-reads the provider "
                                   "every N polls and rotates to a changed key (R8.3)")
    allow_withdrawal_keys: bool = Field(False, description="R9.8: accept an API key that has withdrawals enabled "
                                        "(Rampart never withdraws; a key that cannot is one less way to lose funds)")

    @model_validator(mode="after")
    def _dir_needs_a_folder(self) -> CredentialsConfig:
        if self.provider == "dir" and self.secrets_dir is None:
            raise ValueError("provider 'dir' needs the folder: set RAMPART_CREDENTIALS__SECRETS_DIR "
                             "(it holds the files api_key and api_secret)")
        return self


class AuditConfig(BaseModel):
    """The tamper-evident journal (R8.5); its HMAC key comes from RAMPART_AUDIT_KEY or the secrets dir. Also the
    thresholds of suspicious-activity detection (R8.4, core.security.suspicious)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="keep the audit journal (live, emergency stop, overrides, rotation)")
    path: Path | None = Field(None, description="journal file (default <data_dir>/audit/audit.jsonl)")
    rotate_mb: float = Field(50.0, gt=0, le=100_000, description="start a new journal file once the current one "
                             "reaches this many MiB; the chain continues across files and none is ever deleted")
    anchor_every: int = Field(50, ge=1, le=100_000, description="anchor the latest hash every N records")
    anchor_notify_s: float = Field(3600.0, ge=0, le=7 * 86400,
                                   description="also anchor to the notification channel at most this often (and at "
                                               "session start/stop); 0 = every DuckDB anchor")
    auth_failures: int = Field(3, ge=1, le=1000, description="authentication/signature failures within "
                                                              "auth_window_s that count as suspicious")
    auth_window_s: float = Field(300.0, gt=0, le=86400, description="the window of the auth-failure count")
    check_orders_every: int = Field(1, ge=0, le=10_000, description="look for open orders Rampart did not place "
                                                                     "every N bars (0 = only at reconciliation)")
    check_account_every: int = Field(5, ge=0, le=10_000, description="look for foreign trades and unexplained "
                                                                      "balances every N bars (0 = off)")


Role = Literal["viewer", "operator", "admin"]


class OperatorConfig(BaseModel):
    """One operator: name, role (viewer < operator < admin) and the SHA-256 of the token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token, never the token")
