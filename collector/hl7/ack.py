"""Original-mode HL7 acknowledgments (HL7 v2.5.1 chapter 2.9).

AA: stored. AE: the message is wrong and was dead-lettered with the reason in
MSA-3 and ERR (resending it will not help). AR: Stitchboard could not store it
right now (overload, store down): nothing was kept, the engine should resend.
MSA-2 always echoes the message's MSH-10.
"""

from __future__ import annotations

import itertools
import time

from collector.hl7.extract import Header
from collector.hl7.message import escape

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
    esc = lambda text: escape(text, enc)  # noqa: E731
    trigger = c.join(("ACK", esc(header.trigger), "ACK")) if header.trigger else "ACK"
    msh = f.join(
        (
            "MSH",
            enc.characters,
            esc(header.receiving_application) or "STITCHBOARD",
            esc(header.receiving_facility),
            esc(header.sending_application),
            esc(header.sending_facility),
            stamp + "+0000",
            "",
            trigger,
            control,
            esc(header.processing_id) or "P",
            esc(header.version) or "2.5.1",
        )
    )
    text = esc(reason)[:200]
    msa = (
        f.join(("MSA", code, esc(header.control_id), text))
        if text
        else f.join(("MSA", code, esc(header.control_id)))
    )
    segments = [msh, msa]
    if code != ACCEPT:
        condition = c.join((error_code, ERROR_TEXT.get(error_code, "Error"), "HL70357"))
        severity = "E"
        # ERR-3 error code, ERR-4 severity, ERR-8 user message (v2.5 layout).
        segments.append(f.join(("ERR", "", "", condition, severity, "", "", "", text)))
    return "\r".join(segments)


def ack_bytes(header: Header, code: str, reason: str = "", error_code: str = "207") -> bytes:
    return ack_text(header, code, reason, error_code).encode("utf-8")
