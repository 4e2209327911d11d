"""A real ``stitchboard serve``: the first-start admin logs in, makes an auditor, and the
auditor exports a transaction whose bundle verifies with the server's public key."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import ROOT, serve_process

pytestmark = pytest.mark.slow

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


def login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": csrf})


def test_first_admin_logs_in_and_an_auditor_exports_a_verifiable_bundle(tmp_path):
    with serve_process() as server:
        password_file = server.data_dir.parent / "initial-admin-password"
        password = password_file.read_text().strip()
        with httpx.Client(base_url=server.api, timeout=30) as admin:
            assert httpx.get(f"{server.api}/api/v1/transactions").status_code == 401
            assert login(admin, "admin", "wrong password").status_code == 401
            assert login(admin, "admin", password).status_code == 303  # to /
            csrf = {"X-CSRFToken": admin.cookies["_csrf_token"]}
            made = admin.post(
                "/api/v1/users",
                json={"name": "ana", "role": "auditor", "password": "ana-password-123"},
                headers=csrf,
            )
            assert made.status_code == 201
        body = (ROOT / "tests" / "data" / "hl7" / "adt_a03.hl7").read_bytes()
        assert httpx.post(f"{server.api}/api/v1/messages", content=body, headers=HL7).is_success
        with httpx.Client(base_url=server.api, timeout=30) as ana:
            assert login(ana, "ana", "ana-password-123").status_code == 303
            csrf = {"X-CSRFToken": ana.cookies["_csrf_token"]}
            deadline = time.monotonic() + 60
            while not (found := ana.get("/api/v1/transactions").json()["transactions"]):
                assert time.monotonic() < deadline, "no transaction was stitched"
                time.sleep(0.5)
            tx = found[0]["id"]
            job = ana.post("/api/v1/exports", json={"transaction_id": tx}, headers=csrf).json()
            while (state := ana.get(f"/api/v1/exports/{job['id']}").json())["status"] == "running":
                time.sleep(0.2)
            assert state["status"] == "done" and state["transactions"] == 1
            bundle = tmp_path / "visit.zip"
            bundle.write_bytes(ana.get(state["download"]).content)
            pem = tmp_path / "server.pem"
            pem.write_bytes(ana.get("/api/v1/exports/public-key").content)
            audit = ana.get("/api/v1/audit", params={"target": tx}).json()["audit"]
            loads = ana.get("/api/v1/audit", params={"action": "config.load"}).json()["audit"]
            assert [(r["actor"], r["outcome"]) for r in loads] == [("server", "ok")]
        assert {r["action"] for r in audit} >= {"export.written"}
        assert server.stop() == 0
    assert "First start: console user 'admin'" in server.output
    verify = subprocess.run(
        [sys.executable, "-m", "stitchboard", "export", "verify", str(bundle)]
        + ["--public-key", str(pem)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert verify.returncode == 0, verify.stderr
    # The ten files, and the slas.yaml the server loaded at start (the one it judged under).
    assert "verified (11 files, 1 transactions" in verify.stdout
