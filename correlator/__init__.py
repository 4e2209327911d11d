"""The correlator: stitches hop events into business transactions, judges their deadlines.

What other stages may use (nothing else in this package is public):

- reading transactions: ``TransactionReader`` (a Protocol), ``StoreTransactions``
  (ClickHouse), ``MemoryTransactions`` (in memory, for tests), ``TransactionFilter``,
  ``BadQuery``, ``decode_cursor`` (a page's ``next_cursor`` as ``TransactionFilter.after``);
- the vocabulary: ``Status``, ``Level``, ``Flag`` (with ``STATUSES``, ``LEVELS``, ``FLAGS``);
- the pure core and its loop, for tools that drive them (benchmarks): ``Correlator``,
  ``CorrelatorService``;
- fan-in events no transaction carries (a GL journal whose charge batch is unknown),
  with their age, for alerts on "unmatched for longer than N": ``list_unmatched``,
  ``UnmatchedFilter``; counted per workflow x step x facility: ``unmatched_groups``,
  ``UnmatchedGroup``.
"""

from correlator.engine import Correlator
from correlator.queries import BadQuery, TransactionFilter, decode_cursor
from correlator.reader import MemoryTransactions, StoreTransactions, TransactionReader
from correlator.service import CorrelatorService
from correlator.transaction import FLAGS, LEVELS, STATUSES, Flag, Level, Status
from correlator.unmatched import UnmatchedFilter, UnmatchedGroup, list_unmatched, unmatched_groups

__all__ = [
    "FLAGS",
    "LEVELS",
    "STATUSES",
    "BadQuery",
    "Correlator",
    "CorrelatorService",
    "Flag",
    "Level",
    "MemoryTransactions",
    "Status",
    "StoreTransactions",
    "TransactionFilter",
    "TransactionReader",
    "UnmatchedFilter",
    "UnmatchedGroup",
    "list_unmatched",
    "decode_cursor",
    "unmatched_groups",
]
