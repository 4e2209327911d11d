"""Chat through apprise against a real local receiver: Microsoft Teams.

Teams takes channel notifications through a Power Automate workflow (the connector
webhooks are retired); apprise's ``workflows://host:port/workflow/signature`` URL
posts an Adaptive Card to that host over HTTPS. The receiver here is a local HTTPS
server with a self-signed certificate made for the test (``?verify=no`` on the URL,
as for an on-premises gateway with its own certificate authority).

Slack is not tested here: apprise's Slack plugin posts only to hooks.slack.com,
which no local receiver can stand in for (see docs/alerts.md).
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts import notification_log
from alerts.lifecycle import AlertRecord, Notice
from alerts.notifier import ChannelNotifier
from stitchboard.config.slos import AlertsConfig
from stitchboard.store import Store
from tests.alerts_helpers import NS, Receiver, config, migrate_alerts

T = 1_773_000_000 * NS


def _notice(state: str = "firing") -> Notice:
    record = AlertRecord(
        fingerprint="abcdef0123456789",
        rule="overdue",
        severity="page",
        state=state,
        labels={"rule": "overdue", "workflow": "w", "facility": "F1"},
        annotations={
            "summary": "w at F1: 3 transactions overdue, $12,500.00 at risk",
            "runbook_url": "https://runbooks.example.org/overdue",
        },
        active_since=T,
        starts_at=T,
        ends_at=None if state == "firing" else T + 600 * NS,
        value=3.0,
    )
    return Notice("{rule='overdue'}", {"rule": "overdue"}, (record,), state)


def _tls_context(directory: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def log_store(store: Store) -> Store:
    migrate_alerts(store)
    store.command(f"TRUNCATE TABLE {store.table('notification_log')}")
    return store


# verify=no on a self-signed test certificate: urllib3 warns on every such request.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("answer", [202, 200])
def test_teams_through_a_power_automate_workflow(log_store, monkeypatch, answer: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        receiver = Receiver([answer])
        receiver.server.socket = _tls_context(Path(scratch)).wrap_socket(
            receiver.server.socket, server_side=True
        )
        with receiver:
            monkeypatch.setenv(
                "TEAMS_URLS", f"workflows://127.0.0.1:{receiver.port}/wf123/s1gnature?verify=no"
            )
            cfg = config().model_copy(
                update={
                    "alerts": AlertsConfig.model_validate(
                        {
                            "channels": [
                                {
                                    "name": "teams",
                                    "type": "apprise",
                                    "apprise_urls_env": "TEAMS_URLS",
                                }
                            ]
                        }
                    )
                }
            )
            notifier = ChannelNotifier(cfg, log_store, sleep=lambda s: None)
            notifier.notify([_notice()])
            notifier.notify([_notice("resolved")])
            notifier.close()
            posts = list(receiver.posts)
    assert len(posts) == 2
    for post in posts:
        path, _, query = str(post["path"]).partition("?")
        assert path == "/workflows/wf123/triggers/manual/paths/invoke"
        assert "sig=s1gnature" in query.split("&")
    # An Adaptive Card each: the title, then the text an on-call engineer reads.
    cards = [p["json"]["attachments"][0]["content"] for p in posts]  # type: ignore[index]
    assert {c["type"] for c in cards} == {"AdaptiveCard"}
    texts = {c["body"][1]["text"]: c["body"][2]["text"] for c in cards}
    assert sorted(texts) == ["[FIRING:1] rule=overdue", "[RESOLVED] rule=overdue"]
    firing = texts["[FIRING:1] rule=overdue"]
    assert firing.startswith("Firing:\n- [page] w at F1: 3 transactions overdue, $12,500.00")
    assert "runbook: https://runbooks.example.org/overdue" in firing
    assert texts["[RESOLVED] rule=overdue"].startswith("Resolved:\n")
    rows = notification_log(log_store)
    assert sorted((r["channel"], r["status"]) for r in rows) == [("teams", "sent")] * 2
