"""The collector: receives hops (OTLP, HL7 over MLLP, files), normalizes them into events.

What other stages may use (nothing else in this package is public): the intake
that judges a received record (``Intake``), the MLLP listener (``MllpListener``),
and file import (``read_records``, ``judge_record``, ``import_file``,
``DirectTarget``), which tools such as the benchmarks drive directly.
"""

from collector.files import judge as judge_record
from collector.files import records as read_records
from collector.importer import DirectTarget, import_file
from collector.intake import Intake
from collector.mllp import MllpListener

__all__ = [
    "DirectTarget",
    "Intake",
    "MllpListener",
    "import_file",
    "judge_record",
    "read_records",
]
