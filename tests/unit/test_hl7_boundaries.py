"""Message boundaries in HL7 files found by ``bytes.find`` equal the regular expression's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.hl7.framing import _BOUNDARY, boundaries

ATOMS = [
    b"MSH|",
    b"MSH",
    b"\r",
    b"\n",
    b"\r\n",
    b"FHS|",
    b"BHS^",
    b"BTS",
    b"FTS\r",
    b"MSHA",
    b"MSH1",
    b"x",
    b"|",
    b"MS",
    b"H|",
    b"\x0b",
    "é".encode(),
]


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(ATOMS), max_size=40).map(b"".join))
def test_boundaries_equal_the_regular_expression(buffer: bytes) -> None:
    assert boundaries(buffer) == [m.end() for m in _BOUNDARY.finditer(buffer)]


def test_boundaries_of_a_small_file() -> None:
    text = b"MSH|1\rEVN|x\r\nMSH|2\n\nFHS|^\rMSHX|no\rMSH^3"
    assert boundaries(text) == [13, 20, 34]
