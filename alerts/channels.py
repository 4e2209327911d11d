"""Delivering notices: webhook, PagerDuty Events v2, apprise (e-mail, chat), the log.

Every attempt is recorded (``Attempt``); 429, 5xx and connection errors are
retried with exponential backoff, other 4xx never (the request itself is
wrong). A channel never raises: a failure is an attempt with an error.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from alerts.lifecycle import AlertState, Notice
from alerts.payloads import alertmanager_payload, pagerduty_event, text_message
from stitchboard.config.slos import Channel

log = logging.getLogger("stitchboard.alerts")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
SIGNATURE_HEADER = "X-Stitchboard-Signature"


@dataclass(frozen=True)
class Attempt:
    time: dt.datetime
    fingerprints: tuple[str, ...]
    group_key: str
    channel: str
    action: str
    status: str  # sent | failed | retrying
    response: str
    error: str
    attempt: int


class _Retry(Exception):
    """A failure worth another try (429, 5xx, connection error)."""


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    response = client.post(url, content=body, headers=headers)
    text = response.text[:500]
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"HTTP {response.status_code}: {text}")
    return response.status_code, text


def _with_retries(
    channel: Channel,
    send: Callable[[], tuple[int, str]],
    record: Callable[[str, str, str, int], None],
    sleep: Callable[[float], None],
) -> bool:
    """Call ``send`` until it succeeds, fails for good, or retries run out."""
    attempts = channel.retries + 1
    delay = channel.backoff.nanos / 1e9
    for n in range(1, attempts + 1):
        try:
            status, text = send()
        except (_Retry, httpx.HTTPError, OSError) as exc:
            last = n == attempts
            record("failed" if last else "retrying", "", f"{type(exc).__name__}: {exc}", n)
            if last:
                return False
            sleep(delay)
            delay *= 2
            continue
        if 200 <= status < 300:
            record("sent", f"HTTP {status}: {text}", "", n)
            return True
        record("failed", f"HTTP {status}: {text}", "rejected; not retried", n)
        return False
    return False


class Deliverer:
    """Sends one notice to one channel, recording every attempt through ``record``."""

    def __init__(
        self,
        channel: Channel,
        external_url: str,
        record: Callable[[Attempt], None],
        sleep: Callable[[float], None] = time.sleep,
        env: dict[str, str] | None = None,
    ):
        self.channel = channel
        self.external_url = external_url
        self.record = record
        self.sleep = sleep
        self.env = env

    def _secret(self, name: str | None) -> str | None:
        if name is None:
            return None
        if self.env is not None:
            return self.env.get(name)
        return self.channel.secret(name)

    def _recorder(
        self, notice: Notice, fingerprints: tuple[str, ...], action: str
    ) -> Callable[[str, str, str, int], None]:
        def record(status: str, response: str, error: str, n: int) -> None:
            self.record(
                Attempt(
                    time=dt.datetime.now(dt.UTC),
                    fingerprints=fingerprints,
                    group_key=notice.group_key,
                    channel=self.channel.name,
                    action=action,
                    status=status,
                    response=response,
                    error=error,
                    attempt=n,
                )
            )

        return record

    def deliver(self, notice: Notice, action: str | None = None) -> bool:
        kind = self.channel.type
        try:
            if kind == "log":
                return self._log(notice)
            if kind == "webhook":
                return self._webhook(notice)
            if kind == "pagerduty":
                return self._pagerduty(notice, action)
            return self._apprise(notice)
        except Exception as exc:  # noqa: BLE001 - a channel must never break evaluation
            log.exception("channel %s failed", self.channel.name)
            fps = tuple(r.fingerprint for r in notice.alerts)
            self._recorder(notice, fps, action or notice.status)("failed", "", repr(exc), 1)
            return False

    def _log(self, notice: Notice) -> bool:
        title, body = text_message(notice, self.external_url)
        log.warning("ALERT %s\n%s", title, body)
        fps = tuple(r.fingerprint for r in notice.alerts)
        self._recorder(notice, fps, notice.status)("sent", "logged", "", 1)
        return True

    def _webhook(self, notice: Notice) -> bool:
        url = self.channel.url or self._secret(self.channel.url_env)
        fps = tuple(r.fingerprint for r in notice.alerts)
        record = self._recorder(notice, fps, notice.status)
        if not url:
            record("failed", "", f"environment variable {self.channel.url_env} is not set", 1)
            return False
        payload = alertmanager_payload(notice, self.channel.name, self.external_url)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Stitchboard"}
        secret = self._secret(self.channel.hmac_secret_env)
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        with httpx.Client(timeout=self.channel.timeout.nanos / 1e9) as client:
            return _with_retries(
                self.channel, lambda: _post(client, url, body, headers), record, self.sleep
            )

    def _pagerduty(self, notice: Notice, action: str | None) -> bool:
        key = self._secret(self.channel.routing_key_env)
        url = self.channel.url or PAGERDUTY_URL
        ok = True
        headers = {"Content-Type": "application/json"}
        with httpx.Client(timeout=self.channel.timeout.nanos / 1e9) as client:
            for r in notice.alerts:
                event_action = action or ("trigger" if r.state == AlertState.FIRING else "resolve")
                record = self._recorder(notice, (r.fingerprint,), event_action)
                if not key:
                    record(
                        "failed",
                        "",
                        f"environment variable {self.channel.routing_key_env} is not set",
                        1,
                    )
                    ok = False
                    continue
                event = pagerduty_event(r, key, self.external_url, event_action)
                body = json.dumps(event, separators=(",", ":")).encode()
                sent = _with_retries(
                    self.channel,
                    functools.partial(_post, client, url, body, headers),
                    record,
                    self.sleep,
                )
                ok = sent and ok
        return ok

    def _apprise(self, notice: Notice) -> bool:
        import apprise

        urls = self._secret(self.channel.apprise_urls_env)
        fps = tuple(r.fingerprint for r in notice.alerts)
        record = self._recorder(notice, fps, notice.status)
        if not urls:
            record(
                "failed", "", f"environment variable {self.channel.apprise_urls_env} is not set", 1
            )
            return False
        title, body = text_message(notice, self.external_url)

        def send() -> tuple[int, str]:
            sender = apprise.Apprise()
            for url in urls.split():
                sender.add(url)
            if not sender.notify(title=title, body=body):
                raise _Retry("apprise reported a failed delivery")
            return 200, f"delivered to {len(sender)} service(s)"

        return _with_retries(self.channel, send, record, self.sleep)
