"""Operator controls over a live account: roles and tokens (auth), overrides, and the emergency stop.

Import from the modules (``core.control.emergency``, ``core.control.overrides``): this package's ``__init__``
stays empty so that settings can import ``core.control.auth`` without loading the rest.
"""
