"""The correlator: stitches hop events into business transactions, judges their deadlines.

What other stages may use (nothing else in this package is public):

- reading transactions: ``TransactionReader`` (a Protocol), ``StoreTransactions``
  (ClickHouse), ``MemoryTransactions`` (in memory, for tests), ``TransactionFilter``,
  ``BadQuery``, ``decode_cursor`` (a page's ``next_cursor`` as ``TransactionFilter.after``);
  ``transaction_where(store, where, now)``: the WHERE clauses and bound parameters that
  select a ``TransactionFilter``'s rows of ``transactions`` (for readers of their own,
  such as the console's grid; the select list names the status now ``status_now``);
- the vocabulary: ``Status``, ``Level``, ``Flag`` (with ``STATUSES``, ``LEVELS``, ``FLAGS``);
- the pure core and its loop, for tools that drive them (benchmarks): ``Correlator``,
  ``CorrelatorService``;
- the batch pass, for a full rebuild (after a slas.yaml change, a backfill, a repair):
  ``rebuild(store: Store, config: SlasConfig, now: int | None = None,
  sink: TransactionSink | None = None, chunk: int = 20_000) -> RebuildReport``
  groups every stored event into transactions in ClickHouse (routing from
  slas.yaml in SQL, components by min-label propagation), summarizes them with the
  same ``summarize`` in chunks of ``chunk`` transactions, writes them with one new
  version, and retires the ids and unmatched fan-in rows it did not write. Equal to
  the Python core (``correlate``) transaction for transaction; idempotent;
- fan-in events no transaction carries (a GL journal whose charge batch is unknown),
  with their age, for alerts on "unmatched for longer than N": ``list_unmatched``,
  ``UnmatchedFilter``; counted per workflow x step x facility: ``unmatched_groups``,
  ``UnmatchedGroup``;
- ``mark_correlated(store, config, upto, version)``: record that the stored
  transactions are correlated up to ``upto`` under ``config``, so a start resumes
  from there (for tools that write transaction rows themselves: benchmarks).
"""

from correlator.batch import RebuildReport, rebuild
from correlator.engine import Correlator
from correlator.index import mark_correlated
from correlator.queries import BadQuery, TransactionFilter, decode_cursor, transaction_where
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
    "RebuildReport",
    "Status",
    "StoreTransactions",
    "TransactionFilter",
    "TransactionReader",
    "UnmatchedFilter",
    "UnmatchedGroup",
    "list_unmatched",
    "mark_correlated",
    "rebuild",
    "decode_cursor",
    "transaction_where",
    "unmatched_groups",
]
