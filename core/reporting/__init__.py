"""Reporting: session metrics, the paper-validation report and (later) daily reports and exports.

Import from the submodules (``core.metrics``, ``core.reporting.paper_report``); this
package re-exports nothing so that ``core.gate`` can import metrics without an import cycle.
"""
