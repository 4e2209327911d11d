"""Judging the chunks of an import in worker processes, results in file order.

Turning a record into events is pure Python (about 40 µs for an HL7 message),
so one process caps an import near one core. ``JudgePool`` hands each chunk of
records to a worker process (each holds its own ``Intake``, built once from the
same slas.yaml and pseudonym key) and gives the judged chunks back in the order
they were read, so checkpoints still only move forward. With ``workers`` 1 the
chunks are judged in this process. Workers are started with ``spawn``: the
importing process runs the embedded engine's threads, which ``fork`` must not copy.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from collector.files import Record, judge
from collector.intake import Intake
from stitchboard.config import SlasConfig


@dataclass(frozen=True)
class JudgedChunk:
    """The rows of one chunk of records, and what its report needs."""

    records: int
    end: int  # byte offset just past the chunk's last record
    event_rows: list[Sequence[object]] = field(default_factory=list)
    letter_rows: list[Sequence[object]] = field(default_factory=list)
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def judge_chunk(intake: Intake, chunk: list[Record], source: str, letters: str) -> JudgedChunk:
    """Events and dead letters of every record of ``chunk`` (no I/O)."""
    event_rows: list[Sequence[object]] = []
    letter_rows: list[Sequence[object]] = []
    reasons: Counter[str] = Counter()
    rejected = 0
    for record in chunk:
        outcome = judge(intake, record, source, letters)
        event_rows.extend(e.row() for e in outcome.events)
        if outcome.dead_letter is not None:
            letter_rows.append(outcome.dead_letter.row())
            rejected += 1
            reasons[outcome.reason] += 1
    return JudgedChunk(len(chunk), chunk[-1].end, event_rows, letter_rows, rejected, reasons)


_WORKER_INTAKE: Intake | None = None
_SMALL = 4  # chunks: a file with fewer is judged in the importing process


def _start_worker(config: SlasConfig, pseudonymize: Callable[[str], str]) -> None:
    global _WORKER_INTAKE
    _WORKER_INTAKE = Intake(config, pseudonymize)


def _judge_in_worker(chunk: list[Record], source: str, letters: str) -> JudgedChunk:
    assert _WORKER_INTAKE is not None, "worker started without its initializer"
    return judge_chunk(_WORKER_INTAKE, chunk, source, letters)


class JudgePool:
    def __init__(
        self, config: SlasConfig, pseudonymize: Callable[[str], str], workers: int = 1
    ) -> None:
        self.workers = max(1, workers)
        self.config = config
        self.pseudonymize = pseudonymize
        self.intake = Intake(config, pseudonymize)
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.config, self.pseudonymize),
            )
        return self._executor

    def judge(
        self, chunks: Iterable[list[Record]], source: str, letters: str
    ) -> Iterator[JudgedChunk]:
        """Each chunk judged, in order; at most two chunks per worker in flight.

        A file of a few chunks is judged here: starting workers would cost more.
        """
        chunks = iter(chunks)
        head = list(itertools.islice(chunks, _SMALL))
        if self.workers == 1 or len(head) < _SMALL:
            for chunk in itertools.chain(head, chunks):
                yield judge_chunk(self.intake, chunk, source, letters)
            return
        pool = self._pool()
        pending: deque[Future[JudgedChunk]] = deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.submit(_judge_in_worker, chunk, source, letters))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
