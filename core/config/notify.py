"""Notification settings (``RAMPART_NOTIFY__*``): where Slack messages go and how delivery retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class NotifyConfig(BaseModel):
    """Slack delivery. With no token or channel, notifications go to the log and stay in the outbox (pending)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slack_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-...); never logged")
    slack_channel: str | None = Field(None, description="channel id or name, e.g. #rampart-ops")
    slack_base_url: str | None = Field(None, description="Slack API base URL (tests: a local server, ending in /api/)")
    max_attempts: int = Field(50, ge=1, le=10_000, description="attempts before a message Slack keeps refusing is "
                              "marked failed (an outage never marks anything failed)")
    backoff_s: float = Field(1.0, gt=0, le=600, description="first retry delay; doubles up to max_backoff_s")
    max_backoff_s: float = Field(300.0, gt=0, le=3600, description="longest wait between attempts")
    timeout_s: int = Field(10, ge=1, le=120, description="one Slack API call's connect + read timeout")
    batch_s: float = Field(1.0, ge=0, le=60, description="non-urgent notifications wait this long to go out "
                           "together; urgent ones (emergency stop, SAFE_MODE) go at once")
    poll_s: float = Field(5.0, gt=0, le=600, description="how often a live session's notifier looks for "
                          "notifications other processes stored")
    flush_s: float = Field(5.0, gt=0, le=120, description="bound on the delivery a process makes before it "
                           "exits (session stop, CLI commands)")

    @property
    def slack_configured(self) -> bool:
        """True when both a token and a channel are set: only then is any Slack call made."""
        token = self.slack_token.get_secret_value().strip() if self.slack_token is not None else ""
        return bool(token) and bool((self.slack_channel or "").strip())
