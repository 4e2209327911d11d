"""The durable ingest spool: acknowledge after fdatasync, load into the store behind it.

``journal`` holds the segment files (group commit, checkpoint, size bound,
crash recovery), ``segment`` their record framing, ``codec`` a batch as record
bytes, ``loader`` the writer the receivers use and the thread that loads.
"""

from stitchboard.spool.journal import Journal, JournalStats
from stitchboard.spool.loader import SpooledWriter, open_spooled_writer
from stitchboard.spool.segment import Position

__all__ = ["Journal", "JournalStats", "Position", "SpooledWriter", "open_spooled_writer"]
