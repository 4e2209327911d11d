"""HL7 date/time (DTM/TS) to integer nanoseconds UTC.

``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``. Without an offset the time
is local to the facility (its slas.yaml time zone): interface engines and EHRs
stamp wall-clock time.
"""

from __future__ import annotations

import datetime as dt
import re

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def is_dtm(value: str) -> bool:
    return bool(_DTM.match(value))


def parse_dtm(value: str, zone: dt.tzinfo | None = None) -> int:
    """Nanoseconds since the epoch; raises ValueError with the reason."""
    match = _DTM.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS[.SSSS]]][+ZZZZ])")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            raise ValueError(f"{value!r} has an impossible UTC offset {offset}")
        tz: dt.tzinfo = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    else:
        tz = zone or UTC
    try:
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date/time ({exc})") from exc
    delta = moment - _EPOCH
    nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if fraction:
        nanos += int(fraction.ljust(9, "0")[:9])
    return nanos
