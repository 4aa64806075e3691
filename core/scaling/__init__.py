"""Gradual scaling (SPEC R5, R2.5): the ladder's settings, eligibility from DuckDB, new symbols, decisions, approvals.

``config`` ScalingConfig; ``eligibility`` evaluate(); ``symbols`` the new-symbol rule; ``changes`` an approved
change checked and applied (override ``approve-scaling``); ``decisions`` the scaling_decisions rows, events and
notifications; ``approval`` the reviewer's answer; ``reviews`` paused reviews on the Prefect REST API. The flow is
``flows/scaling_review.py``. Kept import-free: ``core.config`` imports ``core.config.scaling``.
"""
