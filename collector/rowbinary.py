"""Pieces of ClickHouse's RowBinary format that the engine-side decoders write."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """LEB128: the length prefix of a RowBinary String."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
