"""Who may send data: ingest tokens for OTLP and HTTP, sender networks for MLLP.

With ``ingest_auth`` on, OTLP/HTTP, OTLP/gRPC and ``POST /api/v1/messages`` need
``Authorization: Bearer <token>`` of an ``ingest`` (or ``admin``) token. MLLP
has no credentials: ``mllp_allow`` lists the sender networks it accepts (empty:
any, which is safe only while it binds to loopback, the default).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence

from stitchboard import credentials
from stitchboard.errors import ConfigError
from stitchboard.roles import Need, satisfies
from stitchboard.store.client import Store

CACHE_SECONDS = 5.0


def token_check(store: Store) -> Callable[[str], bool]:
    """Whether a token secret is an ingest (or admin) token, read from the store."""

    def allows(secret: str) -> bool:
        token = credentials.check_token(store, secret)
        return token is not None and satisfies(token.role, Need.INGEST)

    return allows


class IngestGuard:
    """Checks an ``Authorization`` header against the ingest tokens (cached a few seconds).

    ``tokens`` answers for one secret (``token_check``; in the receivers' process, a
    question to the server); it runs in a worker thread.
    """

    def __init__(
        self, tokens: Callable[[str], bool], enabled: bool, bootstrap_token: str | None = None
    ):
        self.tokens = tokens
        self.enabled = enabled
        self.bootstrap_token = bootstrap_token
        self._cache: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def _check(self, secret: str) -> bool:
        if self.bootstrap_token and hmac.compare_digest(secret, self.bootstrap_token):
            return True
        return self.tokens(secret)

    async def allowed(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        kind, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if kind.lower() != "bearer" or not secret:
            return False
        key = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        ok = await asyncio.to_thread(self._check, secret)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), ok)
        return ok


class SenderNetworks:
    """An allowlist of networks (``10.0.0.0/8``, ``192.0.2.7``); empty allows any sender."""

    def __init__(self, networks: Sequence[str]):
        parsed, problems = [], []
        for i, text in enumerate(networks):
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                problems.append(f"mllp_allow[{i}]: {exc}")
        if problems:
            raise ConfigError("settings", problems)
        self.networks = parsed

    def allows(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)
