"""Original-mode HL7 acknowledgments (HL7 v2.5.1 chapter 2.9).

AA: stored. AE: the message is wrong and was dead-lettered with the reason in
MSA-3 and ERR (resending it will not help). AR: Stitchboard could not store it
right now (overload, store down): nothing was kept, the engine should resend.
MSA-2 always echoes the message's MSH-10.
"""

from __future__ import annotations

import functools
import itertools
import time

from collector.hl7.extract import Header
from collector.hl7.message import Encoding, escape

ACCEPT = "AA"
ERROR = "AE"
REJECT = "AR"

# HL7 table 0357 message error condition codes
ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "207": "Application internal error",
}

_counter = itertools.count(1)


def ack_text(
    header: Header, code: str, reason: str = "", error_code: str = "207", now_ns: int | None = None
) -> str:
    """The ACK message text (segments separated by CR), in the sender's delimiters."""
    enc = header.encoding
    f, c = enc.field, enc.component
    now = time.gmtime((now_ns if now_ns is not None else time.time_ns()) // 1_000_000_000)
    stamp = time.strftime("%Y%m%d%H%M%S", now)
    control = f"SB{stamp}{next(_counter) % 1_000_000:06d}"
    # MSH-7 (the sender's time) and MSH-10 (its control id) change with every message;
    # the rest of the ACK's MSH is the same for every message of a sender.
    msh = header.msh
    head, tail = _msh_parts(enc, msh[:7] + ("",) + msh[8:10] + ("",) + msh[11:])
    msh_text = f.join((head, stamp + "+0000", "", tail[0], control, tail[1]))
    text = escape(reason, enc)[:200]
    control_id = escape(header.control_id, enc)
    msa = f.join(("MSA", code, control_id, text)) if text else f.join(("MSA", code, control_id))
    segments = [msh_text, msa]
    if code != ACCEPT:
        condition = c.join((error_code, ERROR_TEXT.get(error_code, "Error"), "HL70357"))
        severity = "E"
        # ERR-3 error code, ERR-4 severity, ERR-8 user message (v2.5 layout).
        segments.append(f.join(("ERR", "", "", condition, severity, "", "", "", text)))
    return "\r".join(segments)


@functools.lru_cache(maxsize=1024)
def _msh_parts(enc: Encoding, msh: tuple[str, ...]) -> tuple[str, tuple[str, str]]:
    """The ACK's MSH around MSH-7 and MSH-10, for a message's MSH with both blanked:
    MSH-1 to MSH-6 (applications and facilities swapped), then MSH-9 and MSH-11/12."""
    header = Header(enc, msh)
    f, c = enc.field, enc.component
    esc = lambda text: escape(text, enc)  # noqa: E731
    trigger = c.join(("ACK", esc(header.trigger), "ACK")) if header.trigger else "ACK"
    head = f.join(
        (
            "MSH",
            enc.characters,
            esc(header.receiving_application) or "STITCHBOARD",
            esc(header.receiving_facility),
            esc(header.sending_application),
            esc(header.sending_facility),
        )
    )
    ids = f.join((esc(header.processing_id) or "P", esc(header.version) or "2.5.1"))
    return head, (trigger, ids)


def ack_bytes(header: Header, code: str, reason: str = "", error_code: str = "207") -> bytes:
    return ack_text(header, code, reason, error_code).encode("utf-8")
