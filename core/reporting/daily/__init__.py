"""The daily report (SPEC R7): one UTC day of live trading against its backtest and paper baselines.

Modules: ``data`` (read the day from DuckDB), ``candles`` (where the backtest's candles come from), ``compare``
(backtest over the same candles, trade matching and P&L attribution, paper comparison), ``reasons`` (entry and exit
reasons in words), ``risk`` (risk events, coverage), ``suggest`` (R7.4), ``builder`` (the report document),
``export_json`` / ``export_csv`` / ``export_pdf`` (R7.5) and ``publish`` (generate, write, announce: what the CLI and
the flow call). Nothing is re-exported here: ``core.config`` imports ``core.config.reports`` and this package
must stay import-light.
"""
