"""The go-live gate (SPEC R1.4–R1.7): judge a paper record, name its evidence, and decide go-live.

``verdict``: the R1.4/R1.5 checks of a session's metrics and the stored record (``GateVerdict.to_record``);
``evidence``: what a record was judged on (kind, source, symbols, window, content hash); ``golive``: whether live
trading may start on the attempts stored for a config hash; ``forward``: the forward record's evaluation (R1.6).
"""

from core.gate.evidence import Evidence, candle_evidence
from core.gate.golive import GoLive, check_go_live, go_live
from core.gate.verdict import GateCheck, GateVerdict, Rejudged, evaluate_gate, rejudge

__all__ = ["Evidence", "GateCheck", "GateVerdict", "GoLive", "Rejudged", "candle_evidence", "check_go_live",
           "evaluate_gate", "go_live", "rejudge"]
