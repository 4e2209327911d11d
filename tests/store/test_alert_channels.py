"""Channels against real receivers: a local HTTP server (webhook, PagerDuty-shaped) and
aiosmtpd (e-mail through apprise). Every attempt lands in notification_log."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller

from alerts import notification_log
from alerts.lifecycle import AlertRecord, Notice
from alerts.notifier import ChannelNotifier
from stitchboard.config.slos import AlertsConfig
from stitchboard.store import Store
from tests.alerts_helpers import NS, Receiver, config, migrate_alerts
from tests.support import free_port

T = 1_773_000_000 * NS


def _record(state: str = "firing", fp: str = "abcdef0123456789") -> AlertRecord:
    return AlertRecord(
        fingerprint=fp,
        rule="overdue",
        severity="page",
        state=state,
        labels={"rule": "overdue", "workflow": "w", "facility": "F1"},
        annotations={
            "summary": "w at F1: 3 transactions overdue, $12,500.00 at risk",
            "runbook_url": "https://runbooks.example.org/overdue",
            "example_links": "http://console/api/v1/transactions/t1",
        },
        active_since=T,
        starts_at=T,
        ends_at=None if state == "firing" else T + 600 * NS,
        value=3.0,
    )


def _notice(state: str = "firing") -> Notice:
    return Notice(
        "{rule='overdue',facility='F1'}",
        {"rule": "overdue", "facility": "F1"},
        (_record(state),),
        state,
    )


def _notifier(store: Store, channels: list[dict[str, object]]) -> ChannelNotifier:
    cfg = config().model_copy(
        update={"alerts": AlertsConfig.model_validate({"channels": channels})}
    )
    return ChannelNotifier(cfg, store, sleep=lambda s: None)


@pytest.fixture
def log_store(store: Store) -> Store:
    migrate_alerts(store)
    store.command(f"TRUNCATE TABLE {store.table('notification_log')}")
    return store


def test_webhook_sends_the_alertmanager_v4_payload_signed(log_store, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    with Receiver() as receiver:
        notifier = _notifier(
            log_store,
            [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": receiver.url,
                    "hmac_secret_env": "HOOK_SECRET",
                }
            ],
        )
        notifier.notify([_notice()])
        notifier.close()
        [post] = receiver.posts
    body = post["json"]
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "hook")
    assert body["groupLabels"] == {"rule": "overdue", "facility": "F1"}
    assert body["commonLabels"]["alertname"] == "overdue"
    [alert] = body["alerts"]
    assert alert["fingerprint"] == "abcdef0123456789"
    assert alert["startsAt"] == "2026-03-08T20:00:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"].endswith("/api/v1/alerts?fingerprint=abcdef0123456789")
    expected = hmac.new(b"s3cret", post["raw"], hashlib.sha256).hexdigest()
    assert post["headers"]["X-Stitchboard-Signature"] == f"sha256={expected}"
    [row] = notification_log(log_store)
    assert (row["channel"], row["status"], row["attempt"]) == ("hook", "sent", 1)
    assert row["fingerprint"] == "abcdef0123456789"


def test_receiver_500_then_202_is_delivered_once(log_store) -> None:
    with Receiver([500, 202]) as receiver:
        notifier = _notifier(log_store, [{"name": "hook", "type": "webhook", "url": receiver.url}])
        notifier.notify([_notice()])
        notifier.close()
        assert len(receiver.posts) == 2  # the failed try and the delivery
    rows = sorted(notification_log(log_store), key=lambda r: r["attempt"])
    assert [(r["status"], r["attempt"]) for r in rows] == [("retrying", 1), ("sent", 2)]
    assert "HTTP 500" in rows[0]["error"]
    assert rows[1]["response"].startswith("HTTP 202")


def test_a_receiver_that_is_down_is_recorded_retried_and_nothing_crashes(log_store) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"
    with Receiver() as other:
        notifier = _notifier(
            log_store,
            [
                {"name": "dead", "type": "webhook", "url": down, "retries": 2},
                {"name": "alive", "type": "webhook", "url": other.url},
            ],
        )
        notifier.notify([_notice()])
        notifier.close()
        assert len(other.posts) == 1  # the other channel was not held up
    rows = [r for r in notification_log(log_store) if r["channel"] == "dead"]
    assert sorted((r["attempt"], r["status"]) for r in rows) == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "failed"),
    ]
    assert all("ConnectError" in r["error"] for r in rows)


def test_pagerduty_trigger_and_resolve_share_one_dedup_key(log_store, monkeypatch) -> None:
    monkeypatch.setenv("PD_KEY", "R0UT1NGKEY")
    with Receiver([400, 202]) as receiver:
        notifier = _notifier(
            log_store,
            [{"name": "pd", "type": "pagerduty", "url": receiver.url, "routing_key_env": "PD_KEY"}],
        )
        notifier.notify([_notice()])  # answered 400: never retried
        notifier.wait()
        notifier.notify([_notice()])
        notifier.wait()
        notifier.notify([replace(_notice(), acknowledgement=True)])
        notifier.wait()
        notifier.notify([_notice("resolved")])
        notifier.close()
        bodies = receiver.bodies()
    assert len(bodies) == 4
    first, trigger, ack, resolve = bodies
    assert ack == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "acknowledge",
        "dedup_key": "abcdef0123456789",
    }
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "abcdef0123456789"
    assert trigger["routing_key"] == "R0UT1NGKEY"
    payload = trigger["payload"]
    assert (payload["severity"], payload["source"], payload["component"]) == (
        "critical",
        "F1",
        "w",
    )
    assert payload["summary"].startswith("w at F1: 3 transactions overdue")
    assert {"href": "https://runbooks.example.org/overdue", "text": "Runbook"} in trigger["links"]
    assert "payload" not in resolve
    statuses = [r["status"] for r in notification_log(log_store) if r["channel"] == "pd"]
    assert sorted(statuses) == ["failed", "sent", "sent", "sent"]


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.messages.append(envelope)
        return "250 OK"


def test_email_through_apprise_reaches_a_real_smtp_server(log_store, monkeypatch) -> None:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv(
            "MAIL_URLS",
            f"mailto://127.0.0.1:{port}?from=stitchboard@example.org&to=oncall@example.org"
            "&mode=insecure",
        )
        notifier = _notifier(
            log_store, [{"name": "mail", "type": "apprise", "apprise_urls_env": "MAIL_URLS"}]
        )
        notifier.notify([_notice()])
        notifier.close()
    finally:
        controller.stop()
    [message] = mailbox.messages
    assert message.rcpt_tos == ["oncall@example.org"]
    text = message.content.decode(errors="replace")
    assert "w at F1: 3 transactions overdue" in text
    assert "https://runbooks.example.org/overdue" in text
    [row] = notification_log(log_store)
    assert (row["channel"], row["status"]) == ("mail", "sent")


def test_missing_secret_is_recorded_not_raised(log_store) -> None:
    notifier = _notifier(
        log_store, [{"name": "pd", "type": "pagerduty", "routing_key_env": "NO_SUCH_VAR_X"}]
    )
    notifier.notify([_notice()])
    notifier.close()
    [row] = notification_log(log_store)
    assert row["status"] == "failed" and "NO_SUCH_VAR_X" in row["error"]


def test_an_acknowledgement_goes_to_pagerduty_only(log_store) -> None:
    with Receiver() as receiver:
        notifier = _notifier(log_store, [{"name": "hook", "type": "webhook", "url": receiver.url}])
        notifier.notify([replace(_notice(), acknowledgement=True)])
        notifier.close()
        assert receiver.posts == []
