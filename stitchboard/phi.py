"""PHI pseudonymization: keyed HMAC-SHA256, applied at ingest.

The key never lives in the database: it comes from ``STITCHBOARD_PSEUDONYM_KEY``
or the file named by ``STITCHBOARD_PSEUDONYM_KEY_FILE``. The same value always
maps to the same pseudonym under one key, so a search by MRN pseudonymizes the
query and compares pseudonyms.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from pathlib import Path

from stitchboard.errors import ConfigError

PREFIX = "phi:"
DEMO_KEY_FILE = Path("stitchboard.key")
# Surrounding ASCII white space is not part of an identifier (SQL trims the same set).
ASCII_SPACE = " \t\n\r\x0b\x0c"


class Pseudonymizer:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ConfigError("pseudonym key", ["the key must be at least 16 bytes"])
        self._key = key
        # HMAC-SHA256 with its two padded keys hashed once: each pseudonym then costs
        # two SHA-256 runs over its own bytes (0.9 µs, where ``hmac.digest`` took 2.5
        # setting the key up again every time).
        ipad, opad = (bytes.fromhex(pad) for pad in self.hmac_pads())
        self._inner, self._outer = hashlib.sha256(ipad), hashlib.sha256(opad)
        # The same identifiers recur across the hops of one patient's events.
        self._cached = functools.lru_cache(maxsize=65536)(self._pseudonym)

    def _pseudonym(self, value: str) -> str:
        inner = self._inner.copy()
        inner.update(value.strip(ASCII_SPACE).encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return PREFIX + outer.hexdigest()[:32]

    def hmac_pads(self) -> tuple[str, str]:
        """HMAC-SHA256's inner and outer padded keys, hex (RFC 2104): the pseudonyms
        start from them, and so do engines that compute the same pseudonyms in SQL (never
        stored: they are passed with each statement)."""
        key = self._key
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        return bytes(b ^ 0x36 for b in key).hex(), bytes(b ^ 0x5C for b in key).hex()

    def __reduce__(self) -> tuple[type[Pseudonymizer], tuple[bytes]]:
        # For import worker processes on this machine (the lru cache does not pickle).
        return (Pseudonymizer, (self._key,))

    def __call__(self, value: str) -> str:
        if not value or value.startswith(PREFIX):
            return value
        return self._cached(value)


def load_key(key: str | None, key_file: Path | None) -> bytes:
    """The key from settings; without one, a per-installation key file is created."""
    if key:
        return key.encode()
    path = key_file or DEMO_KEY_FILE
    if path.is_file():
        return path.read_bytes().strip()
    if key_file is not None:
        raise ConfigError("pseudonym_key_file", [f"file not found ({path})"])
    path.write_text(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path.read_bytes().strip()
