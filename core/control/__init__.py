"""Operator controls over a live account: the emergency stop and its HALT flag (SPEC R6)."""

from core.control.emergency import (
    EmergencyReport,
    emergency_stop,
    emergency_stop_command,
    halt_path,
    read_halt,
    write_halt,
)

__all__ = ["EmergencyReport", "emergency_stop", "emergency_stop_command", "halt_path", "read_halt", "write_halt"]
