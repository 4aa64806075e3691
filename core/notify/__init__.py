"""Notifications: the DuckDB outbox and its delivery to Slack (R3.2)."""

from core.notify.delivery import DeliveryReport, Notifier, deliver_now, deliver_pending, notify_now
from core.notify.outbox import Notification, enqueue, notify

__all__ = ["DeliveryReport", "Notification", "Notifier", "deliver_now", "deliver_pending", "enqueue", "notify",
           "notify_now"]
