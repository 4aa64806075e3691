"""Notification settings (``RAMPART_NOTIFY__*``): where Slack messages go and how delivery retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class NotifyConfig(BaseModel):
    """Slack delivery. With no token or channel, notifications go to the log and stay in the outbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slack_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-...); never logged")
    slack_channel: str | None = Field(None, description="channel id or name, e.g. #rampart-ops")
    slack_base_url: str | None = Field(None, description="Slack API base URL (tests: a local server, ending in /api/)")
    max_attempts: int = Field(50, ge=1, le=10_000, description="delivery attempts before an entry is marked failed")
    backoff_s: float = Field(1.0, gt=0, le=600, description="first retry delay; doubles up to max_backoff_s")
    max_backoff_s: float = Field(300.0, gt=0, le=3600, description="longest wait between attempts")
