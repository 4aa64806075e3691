"""Dashboard settings (``RAMPART_DASHBOARD__*``): bind address, login session and lockout."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DashboardConfig(BaseModel):
    """The operator web page served by the live session or by ``rampart dashboard``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="bind address; keep 127.0.0.1 unless behind an authenticating proxy")
    port: int = Field(8787, ge=0, le=65535, description="TCP port (0 = any free port)")
    session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 86400, description="how long a login lasts")
    lockout_after: int = Field(10, ge=3, le=100, description="failed logins in a row before lockout (R8.4)")
    lockout_s: int = Field(900, ge=60, le=86400, description="how long a lockout lasts")
