"""Rampart core: the application (engine, strategies, risk, execution, store). Never imports prefect."""

__version__ = "0.1.0"
