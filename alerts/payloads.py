"""What each channel receives, built from a ``Notice`` (pure; pinned by contract tests).

- webhook: Alertmanager's webhook payload, version 4, so any receiver written
  for Alertmanager works unchanged;
- PagerDuty Events API v2: one event per alert, ``dedup_key`` = the alert's
  fingerprint, so trigger, acknowledge and resolve act on one incident;
- e-mail and chat (apprise) and the log: a title and a plain-text body with what
  an engineer needs at 3 a.m.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from alerts.lifecycle import AlertRecord, AlertState, Notice

_NS = 1_000_000_000
ZERO_TIME = "0001-01-01T00:00:00Z"
PD_SEVERITY = {"page": "critical", "ticket": "warning", "info": "info"}


def rfc3339(ns: int | None) -> str:
    if not ns:
        return ZERO_TIME
    moment = dt.datetime.fromtimestamp(ns // _NS, dt.UTC).replace(microsecond=(ns % _NS) // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def _labels(record: AlertRecord) -> dict[str, str]:
    return {"alertname": record.rule, "severity": record.severity, **record.labels}


def alertmanager_payload(notice: Notice, receiver: str, external_url: str) -> dict[str, Any]:
    alerts = []
    for r in notice.alerts:
        firing = r.state == AlertState.FIRING
        alerts.append(
            {
                "status": "firing" if firing else "resolved",
                "labels": _labels(r),
                "annotations": dict(r.annotations),
                "startsAt": rfc3339(r.starts_at),
                "endsAt": ZERO_TIME if firing else rfc3339(r.ends_at),
                "generatorURL": f"{external_url}/api/v1/alerts?fingerprint={r.fingerprint}",
                "fingerprint": r.fingerprint,
            }
        )
    return {
        "version": "4",
        "groupKey": notice.group_key,
        "truncatedAlerts": 0,
        "status": notice.status,
        "receiver": receiver,
        "groupLabels": dict(notice.group_labels),
        "commonLabels": _common([_labels(r) for r in notice.alerts]),
        "commonAnnotations": _common([dict(r.annotations) for r in notice.alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def pagerduty_event(
    record: AlertRecord, routing_key: str, external_url: str, action: str | None = None
) -> dict[str, Any]:
    """``action``: trigger (firing), resolve (resolved) or acknowledge."""
    action = action or ("trigger" if record.state == AlertState.FIRING else "resolve")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": record.fingerprint,
    }
    if action == "trigger":
        links = [
            {
                "href": f"{external_url}/api/v1/alerts?fingerprint={record.fingerprint}",
                "text": "Stitchboard alert",
            }
        ]
        runbook = record.annotations.get("runbook_url")
        if runbook:
            links.append({"href": runbook, "text": "Runbook"})
        for link in record.annotations.get("example_links", "").split()[:5]:
            links.append({"href": link, "text": "Transaction"})
        event["payload"] = {
            "summary": record.annotations.get("summary", record.rule)[:1024],
            "source": record.labels.get("facility", "stitchboard"),
            "severity": PD_SEVERITY.get(record.severity, "error"),
            "timestamp": rfc3339(record.starts_at),
            "component": record.labels.get("workflow") or record.labels.get("system", ""),
            "group": record.labels.get("facility", ""),
            "class": record.rule,
            "custom_details": {**record.labels, **record.annotations},
        }
        event["links"] = links
        event["client"] = "Stitchboard"
        event["client_url"] = external_url
    return event


def text_message(notice: Notice, external_url: str) -> tuple[str, str]:
    """A title and body for e-mail, chat and the log."""
    firing = [r for r in notice.alerts if r.state == AlertState.FIRING]
    resolved = [r for r in notice.alerts if r.state == AlertState.RESOLVED]
    labels = ", ".join(f"{k}={v}" for k, v in notice.group_labels.items() if v)
    title = f"[{notice.status.upper()}{':' + str(len(firing)) if firing else ''}] {labels}"
    lines: list[str] = []
    for heading, records in (("Firing", firing), ("Resolved", resolved)):
        if not records:
            continue
        lines.append(f"{heading}:")
        for r in records:
            a = r.annotations
            lines.append(f"- [{r.severity}] {a.get('summary', r.rule)}")
            if a.get("description"):
                lines.append(f"  {a['description']}")
            where = ", ".join(f"{k}={v}" for k, v in r.labels.items())
            lines.append(f"  labels: {where}; since {rfc3339(r.starts_at)}")
            examples = a.get("example_links", "").split()[:5]
            if examples:
                lines.append("  examples: " + " ".join(examples))
            if a.get("runbook_url"):
                lines.append(f"  runbook: {a['runbook_url']}")
            lines.append(f"  alert: {external_url}/api/v1/alerts?fingerprint={r.fingerprint}")
    return title, "\n".join(lines)
