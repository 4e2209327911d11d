"""Console sessions in a signed cookie, their CSRF token, and the login rate limit.

The cookie holds the user name, a session id, the CSRF token and the time of
login, signed with ``itsdangerous`` under a key that never leaves the process
(``STITCHBOARD_SESSION_KEY`` to keep sessions across restarts). The role is not
in the cookie: it is read from the users table on use, so disabling a user or
changing a role takes effect at once. A session ends at ``session_minutes``
after login or at logout (the session id is then refused).

CSRF uses the double-submit pattern Dash already speaks: the token is also in
a script-readable ``_csrf_token`` cookie, and state-changing requests carry it in
an ``X-CSRFToken`` header (Dash's renderer sends that header by itself) or a
``csrf_token`` form field; it must equal the token in the signed session.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

SESSION_COOKIE = "sb_session"
CSRF_COOKIE = "_csrf_token"
CSRF_HEADERS = ("x-csrftoken", "x-csrf-token")


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    csrf: str
    issued: float


class Sessions:
    """Issues and reads session cookies; ``clock`` is seconds since the epoch."""

    def __init__(
        self, key: str | bytes, ttl_seconds: float, clock: Callable[[], float] = time.time
    ):
        self._signer = URLSafeSerializer(key, salt="stitchboard.session")
        self.ttl = ttl_seconds
        self.clock = clock
        self._ended: dict[str, float] = {}  # sid -> when it would have expired anyway
        self._lock = threading.Lock()

    def issue(self, user: str) -> tuple[Session, str]:
        session = Session(user, secrets.token_urlsafe(16), secrets.token_urlsafe(24), self.clock())
        value = self._signer.dumps([session.user, session.sid, session.csrf, session.issued])
        return session, value

    def read(self, cookie: str | None) -> Session | None:
        """The session, if the cookie is genuine, not expired and not logged out."""
        if not cookie:
            return None
        try:
            user, sid, csrf, issued = self._signer.loads(cookie)
        except (BadSignature, ValueError, TypeError):
            return None
        now = self.clock()
        if not isinstance(issued, int | float) or not 0 <= now - issued < self.ttl:
            return None
        with self._lock:
            if sid in self._ended:
                return None
        return Session(str(user), str(sid), str(csrf), float(issued))

    def end(self, session: Session) -> None:
        now = self.clock()
        with self._lock:
            self._ended = {s: t for s, t in self._ended.items() if t > now}
            self._ended[session.sid] = session.issued + self.ttl


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


class LoginLimiter:
    """At most ``limit`` failed logins per user name and per source address in ``window``."""

    def __init__(
        self, limit: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, user: str, source: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in (f"u:{user.lower()}", f"a:{source}"):
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    wait = max(wait, self.window - (now - times[0]))
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, user: str, source: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray
                self._failures.clear()
            for key in (f"u:{user.lower()}", f"a:{source}"):
                self._recent(key, now).append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{user.lower()}", None)
