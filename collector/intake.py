"""One record in (an HL7 message, a JSON line, a CSV row), events or a dead letter out.

Shared by the MLLP listener, ``POST /api/v1/messages``, file import and
dead-letter replay, so a record is judged the same way whichever door it came
through. No I/O: callers put the outcomes in a ``Batch`` and await the writer.

Dead-letter payloads are PHI-masked (see ``collector.hl7.phi``): HL7 text with
pseudonymized PHI fields, a JSON line or CSV row (as a JSON object) with
pseudonymized PHI fields. Masked payloads replay to the same events.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.hl7.compiled import CompiledExtractor
from collector.hl7.extract import Header
from collector.hl7.message import decode
from collector.logs_mapping import LogExtractor, RowRejected
from stitchboard.config import SlasConfig
from stitchboard.events import DEAD_LETTER_COLUMNS, EVENT_COLUMNS, DeadLetter, Event
from stitchboard.writer import Batch

HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"
JSONL_CONTENT_TYPE = "application/x-ndjson"
CSV_ROW_CONTENT_TYPE = "application/vnd.stitchboard.csv-row+json"


@dataclass(frozen=True, slots=True)
class Outcome:
    events: tuple[Event, ...] = ()
    dead_letter: DeadLetter | None = None
    header: Header | None = None  # HL7 only: what the ACK answers
    error_code: str = ""

    @property
    def reason(self) -> str:
        return self.dead_letter.reason if self.dead_letter else ""

    @property
    def accepted(self) -> bool:
        return self.dead_letter is None


class Intake:
    def __init__(
        self,
        config: SlasConfig,
        pseudonymize: Callable[[str], str],
        now: Callable[[], int] = time.time_ns,
    ):
        self.hl7_extractor = CompiledExtractor(config, pseudonymize)
        self.logs = LogExtractor(config, pseudonymize)
        self.now = now
        self._phi_json = _phi_json_pattern(config.messages.logs.phi_fields)
        self._pseudonymize = pseudonymize

    # -- HL7 ----------------------------------------------------------------------------

    def hl7(
        self, raw: bytes | str, source: str, dead_letter_source: str, problem: str = ""
    ) -> Outcome:
        """Events of one message, or its dead letter; ``problem`` rejects it regardless."""
        text = raw if isinstance(raw, str) else decode(raw)
        now = self.now()
        result = self.hl7_extractor.extract(text, source, now)
        if not result.rejected and not problem:
            return Outcome(events=result.events, header=result.header)
        letter = DeadLetter(
            source=dead_letter_source,
            content_type=HL7_CONTENT_TYPE,
            payload=result.masked.encode("utf-8"),
            reason=problem or result.reason,
            received_time=now,
        )
        return Outcome(dead_letter=letter, header=result.header, error_code=result.error_code)

    # -- JSON Lines and CSV ---------------------------------------------------------------

    def json_line(self, line: bytes | str, source: str, dead_letter_source: str) -> Outcome:
        text = line if isinstance(line, str) else decode(line)
        try:
            row = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return self._reject(
                self._mask_json_text(text),
                JSONL_CONTENT_TYPE,
                f"not valid JSON ({exc})",
                dead_letter_source,
            )
        if not isinstance(row, dict):
            return self._reject(
                text,
                JSONL_CONTENT_TYPE,
                f"a JSON line must be an object, not {type(row).__name__}",
                dead_letter_source,
            )
        return self.row(row, source, dead_letter_source, "jsonl", JSONL_CONTENT_TYPE)

    def row(
        self,
        row: dict[str, Any],
        source: str,
        dead_letter_source: str,
        source_kind: str = "csv",
        content_type: str = CSV_ROW_CONTENT_TYPE,
        problem: str = "",
    ) -> Outcome:
        """Events of one row, or its dead letter; ``problem`` rejects it regardless."""
        extra = row.pop(None, None) if None in row else None  # type: ignore[call-overload]
        masked = self.logs.mask(row)
        payload = json.dumps(masked, ensure_ascii=False, default=str)
        if problem:
            return self._reject(payload, content_type, problem, dead_letter_source)
        if extra:
            return self._reject(
                payload,
                content_type,
                f"the row has {len(extra)} more values than the header has columns",
                dead_letter_source,
            )
        try:
            event = self.logs.event(masked, source, source_kind, self.now())
        except RowRejected as exc:
            return self._reject(payload, content_type, str(exc), dead_letter_source)
        return Outcome(events=(event,))

    def _reject(self, payload: str, content_type: str, reason: str, source: str) -> Outcome:
        letter = DeadLetter(
            source=source,
            content_type=content_type,
            payload=payload.encode("utf-8"),
            reason=reason,
            received_time=self.now(),
        )
        return Outcome(dead_letter=letter, error_code="102")

    def _mask_json_text(self, text: str) -> str:
        """Broken JSON can still name PHI fields: pseudonymize their string values."""
        if self._phi_json is None:
            return text
        return self._phi_json.sub(
            lambda m: m.group(1) + json.dumps(self._pseudonymize(m.group(2))), text
        )

    # -- replay -------------------------------------------------------------------------

    def replay(self, source: str, content_type: str, payload: bytes) -> Outcome:
        """A dead letter judged again under the current slas.yaml."""
        kind = source.split(":", 1)[0]
        event_source = source.split(":", 1)[1] if kind == "file" else kind
        if content_type == HL7_CONTENT_TYPE:
            return self.hl7(payload, event_source, source)
        if content_type == CSV_ROW_CONTENT_TYPE:
            try:
                row = json.loads(payload)
            except ValueError as exc:
                return self._reject(
                    decode(payload), content_type, f"not valid JSON ({exc})", source
                )
            return self.row(row, event_source, source)
        return self.json_line(payload, event_source, source)


def _phi_json_pattern(fields: Iterable[str]) -> re.Pattern[str] | None:
    names = [re.escape(f.rsplit(".", 1)[-1]) for f in fields]
    if not names:
        return None
    return re.compile(r'("(?:' + "|".join(names) + r')"\s*:\s*)"((?:[^"\\]|\\.)*)"')


def batch_of(outcomes: Iterable[Outcome], batch: Batch | None = None) -> Batch:
    """The rows of ``outcomes`` for the writer: events and dead letters, durable together."""
    batch = batch or Batch()
    events: list[Sequence[object]] = []
    letters: list[Sequence[object]] = []
    for outcome in outcomes:
        events.extend(e.row() for e in outcome.events)
        if outcome.dead_letter is not None:
            letters.append(outcome.dead_letter.row())
    batch.add("events", EVENT_COLUMNS, events)
    batch.add("dead_letters", DEAD_LETTER_COLUMNS, letters)
    return batch
