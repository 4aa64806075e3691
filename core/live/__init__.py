"""The live session: preflight, reconciliation, the exchange feed and the long-running loop."""
