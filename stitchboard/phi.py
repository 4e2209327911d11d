"""PHI pseudonymization: keyed HMAC-SHA256, applied at ingest.

The key never lives in the database: it comes from ``STITCHBOARD_PSEUDONYM_KEY``
or the file named by ``STITCHBOARD_PSEUDONYM_KEY_FILE``. The same value always
maps to the same pseudonym under one key, so a search by MRN pseudonymizes the
query and compares pseudonyms.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from pathlib import Path

from stitchboard.errors import ConfigError

PREFIX = "phi:"
DEMO_KEY_FILE = Path("stitchboard.key")


class Pseudonymizer:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ConfigError("pseudonym key", ["the key must be at least 16 bytes"])
        self._key = key
        # The same identifiers recur across the hops of one patient's events.
        self._cached = functools.lru_cache(maxsize=65536)(self._pseudonym)

    def _pseudonym(self, value: str) -> str:
        digest = hmac.digest(self._key, value.strip().encode(), "sha256")
        return PREFIX + digest.hex()[:32]

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
