"""Roles, sessions, CSRF, the login limiter and the audit hash chain, without a store."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from stitchboard.audit import GENESIS, AuditEntry, VerifyReport, chained, verify_records
from stitchboard.login import safe_next
from stitchboard.roles import Need, Role, default_rule, parse_role, satisfies
from stitchboard.sessions import LoginLimiter, Sessions, csrf_matches


def test_roles_are_ordered_and_ingest_stands_apart():
    assert satisfies(Role.VIEWER, Need.VIEWER)
    assert not satisfies(Role.VIEWER, Need.ENGINEER)
    assert satisfies(Role.ENGINEER, Need.VIEWER)
    assert not satisfies(Role.ENGINEER, Need.AUDITOR)
    assert satisfies(Role.AUDITOR, Need.ENGINEER)
    assert not satisfies(Role.AUDITOR, Need.ADMIN)
    assert satisfies(Role.ADMIN, Need.ADMIN)
    # An ingest token sends data and reads nothing.
    assert not satisfies(Role.INGEST, Need.VIEWER)
    assert satisfies(Role.INGEST, Need.INGEST)
    assert not satisfies(Role.AUDITOR, Need.INGEST)
    assert all(satisfies(role, Need.PUBLIC) for role in Role)


def test_undeclared_routes_default_to_viewer_for_reads_and_engineer_for_changes():
    assert default_rule("GET").need is Need.VIEWER
    assert default_rule("HEAD").need is Need.VIEWER
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert default_rule(method).need is Need.ENGINEER


def test_parse_role_names_the_known_roles():
    assert parse_role(" Auditor ") is Role.AUDITOR
    with pytest.raises(ValueError, match="unknown role 'root'; known: viewer, engineer"):
        parse_role("root")


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_session_expires_at_its_lifetime_and_at_logout():
    clock = Clock()
    sessions = Sessions("k" * 32, ttl_seconds=3600, clock=clock)
    session, cookie = sessions.issue("ana")
    assert sessions.read(cookie) == session
    clock.t += 3599
    assert sessions.read(cookie) is not None
    clock.t += 1
    assert sessions.read(cookie) is None  # 3600 s after login
    clock.t -= 3000
    sessions.end(session)
    assert sessions.read(cookie) is None  # logged out


def test_a_forged_or_altered_cookie_is_refused():
    sessions = Sessions("k" * 32, ttl_seconds=3600)
    _, cookie = sessions.issue("ana")
    assert sessions.read(cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]) is None
    other = Sessions("another key entirely.............", ttl_seconds=3600)
    _, foreign = other.issue("admin")
    assert sessions.read(foreign) is None
    assert sessions.read("") is None


def test_csrf_token_must_match_the_session():
    sessions = Sessions("k" * 32, ttl_seconds=60)
    session, _ = sessions.issue("ana")
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf + "x")


def test_login_limiter_blocks_after_five_failures_per_user_and_per_address():
    clock = Clock(0.0)
    limiter = LoginLimiter(limit=5, window=900, clock=clock)
    for _ in range(5):
        assert limiter.retry_after("ana", "10.0.0.1") == 0
        limiter.failed("ana", "10.0.0.1")
    # Blocked for the rest of the window: 900 s after the first failure, plus one.
    assert limiter.retry_after("ana", "10.0.0.9") == 901
    assert limiter.retry_after("bob", "10.0.0.1") == 901
    assert limiter.retry_after("bob", "10.0.0.2") == 0
    clock.t = 900.0
    assert limiter.retry_after("ana", "10.0.0.1") == 0


def test_next_after_login_stays_on_this_site():
    assert safe_next("/api/v1/transactions?key=1") == "/api/v1/transactions?key=1"
    for bad in ("https://evil.example", "//evil.example", "/\\evil.example", "", None):
        assert safe_next(bad) == "/"


T0 = dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)


def _chain(n: int) -> list:
    records, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = AuditEntry("ana", "auditor", "transaction.view", (f"tx{i}",), "10.0.0.1")
        rec = chained(entry, "c1", i, prev, T0 + dt.timedelta(seconds=i))
        records.append(rec)
        prev = rec.hash
    return records


def _verify(records) -> list[str]:
    report = VerifyReport()
    verify_records("c1", iter(records), report)
    return report.problems


def test_an_intact_chain_verifies():
    records = _chain(5)
    report = VerifyReport()
    verify_records("c1", iter(records), report)
    assert report.ok and report.chains == {"c1": 5}


def test_a_deleted_row_is_named():
    records = _chain(5)
    del records[2]
    assert _verify(records) == ["audit_log chain 'c1': seq 3 missing (deleted)"]


def test_an_altered_row_is_named():
    records = _chain(5)
    records[1] = dataclasses.replace(records[1], targets=("tx999",))
    assert _verify(records) == [
        "audit_log chain 'c1' row seq 2: altered (its content does not match its hash)"
    ]


def test_a_reordered_pair_is_named():
    records = _chain(5)
    # Swap the content of rows 2 and 3 but keep the seq numbers in order.
    a, b = records[1], records[2]
    records[1] = dataclasses.replace(b, seq=2)
    records[2] = dataclasses.replace(a, seq=3)
    problems = _verify(records)
    assert "audit_log chain 'c1' row seq 2: does not follow the row before it" in problems[0]
    assert any("row seq 3" in p for p in problems)


def test_a_rehashed_edit_still_breaks_the_next_link():
    records = _chain(4)
    edited = dataclasses.replace(records[1], actor="mallory")
    rehashed = chained(edited, "c1", 2, edited.prev_hash, edited.time)
    records[1] = rehashed
    assert _verify(records) == [
        "audit_log chain 'c1' row seq 3: does not follow the row before it"
        " (reordered, or a row replaced)"
    ]


def test_only_dash_bundles_and_assets_outside_the_api_are_public():
    from stitchboard.access import PUBLIC_RULE, rule_for

    def need(method: str, path: str) -> Need:
        scope = {"type": "http", "method": method, "path": path, "headers": []}
        return rule_for([], scope)[0].need

    assert need("GET", "/_dash-component-suites/dash/deps/react.min.js") is PUBLIC_RULE.need
    assert need("GET", "/dashboards/assets/style.css") is Need.PUBLIC
    assert need("GET", "/favicon.ico") is Need.PUBLIC
    assert need("GET", "/api/v1/assets/x.js") is Need.VIEWER
    assert need("GET", "/assets/../api/v1/audit") is Need.VIEWER
    assert need("POST", "/_dash-component-suites/x.js") is Need.ENGINEER
    assert need("POST", "/dashboards/_dash-update-component") is Need.VIEWER
    assert need("GET", "/no/such/page") is Need.VIEWER
