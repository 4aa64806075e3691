"""Notifications: the DuckDB outbox and its delivery to Slack (R3.2)."""

from core.notify.outbox import Notification, enqueue, notify

__all__ = ["Notification", "enqueue", "notify"]
