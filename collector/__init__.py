"""The collector: receives hops (OTLP, HL7 over MLLP, files), normalizes them into events.

What other stages may use (nothing else in this package is public): the intake
that judges a received record (``Intake``), the MLLP listener (``MllpListener``),
and file import (``read_records``, ``judge_record``, ``import_file``,
``DirectTarget``), which tools such as the benchmarks drive directly; dead-letter
replay under slas.yaml as it is on disk (``DeadLetterFilter``, ``reload_config``,
``replay_dead_letters``), which the console's data-health page offers.
"""

from collector.dead_letters import Filter as DeadLetterFilter
from collector.dead_letters import reload as reload_config
from collector.dead_letters import replay as replay_dead_letters
from collector.files import judge as judge_record
from collector.files import records as read_records
from collector.importer import DirectTarget, import_file
from collector.intake import Intake
from collector.mllp import MllpListener

__all__ = [
    "DeadLetterFilter",
    "DirectTarget",
    "Intake",
    "MllpListener",
    "import_file",
    "judge_record",
    "read_records",
    "reload_config",
    "replay_dead_letters",
]
