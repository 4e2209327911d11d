"""Test helpers: free ports, a real ``stitchboard serve`` subprocess, in-process listeners."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from stitchboard.components import Component

ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "test-pseudonym-key-0123456789abcdef"
# Every test server accepts this admin token (STITCHBOARD_BOOTSTRAP_TOKEN); send AUTH with
# requests to the console port, and TOKEN_ENV to CLI commands that call a server.
TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef-0123456789"
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
TOKEN_ENV = {"STITCHBOARD_TOKEN": TEST_ADMIN_TOKEN}


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range and not handed out before.

    A port from ``bind(0)`` comes from the ephemeral range, where the kernel may give
    it to an outgoing connection (or to the next ``bind(0)``) before the server binds.
    """
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


class ServeProcess:
    """A real ``stitchboard serve`` subprocess with its own data directory and ports."""

    def __init__(
        self, data_dir: Path, config: Path | None = None, env: dict[str, str] | None = None
    ):
        self.data_dir = data_dir
        self.config = config or ROOT / "slas.yaml"
        self.port = free_port()
        self.otlp_http_port = free_port()
        self.otlp_grpc_port = free_port()
        self.mllp_port = free_port()
        self.extra_env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def clickhouse(self) -> str:
        return f"chdb://{self.data_dir}"

    def start(self, timeout: float = 60) -> ServeProcess:
        env = {
            **os.environ,
            "STITCHBOARD_PSEUDONYM_KEY": TEST_KEY,
            "STITCHBOARD_BOOTSTRAP_TOKEN": TEST_ADMIN_TOKEN,
            **self.extra_env,
        }
        cmd = [
            sys.executable,
            "-m",
            "stitchboard",
            "serve",
            "--clickhouse",
            self.clickhouse,
            "--config",
            str(self.config),
            "--port",
            str(self.port),
            "--otlp-http-port",
            str(self.otlp_http_port),
            "--otlp-grpc-port",
            str(self.otlp_grpc_port),
            "--mllp-port",
            str(self.mllp_port),
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.data_dir.parent,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, _ = self.proc.communicate()
                raise RuntimeError(f"stitchboard serve exited early:\n{out}")
            try:
                if httpx.get(f"{self.api}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"stitchboard serve not ready in {timeout}s:\n{self.output}")

    def health(self) -> dict:
        return httpx.get(f"{self.api}/api/v1/health", timeout=10, headers=AUTH).json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output = out or ""
        return self.proc.returncode


def with_evaluation_interval(config: Path, interval: str, directory: Path) -> Path:
    """``config`` written to ``directory`` with ``alerts.evaluation_interval`` set to
    ``interval``: a test that waits for an evaluation cycle waits seconds, not 15."""
    text = config.read_text()
    found = re.search(r"^  evaluation_interval: .*$", text, flags=re.MULTILINE)
    assert found is not None, f"{config} sets no alerts.evaluation_interval"
    path = directory / "slas.yaml"
    path.write_text(
        f"{text[: found.start()]}  evaluation_interval: {interval}{text[found.end() :]}"
    )
    return path


@contextmanager
def serve_process(
    config: Path | None = None,
    env: dict[str, str] | None = None,
    evaluation_interval: str | None = None,
) -> Iterator[ServeProcess]:
    """A started server on a data directory of its own, stopped and removed afterwards.
    ``evaluation_interval``: the alerts' interval instead of the configuration's."""
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-serve-"))
    if evaluation_interval is not None:
        config = with_evaluation_interval(
            config or ROOT / "slas.yaml", evaluation_interval, workdir
        )
    server = ServeProcess(workdir / "data", config=config, env=env).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def sql(clickhouse: str, query: str) -> list[dict]:
    """Run a read query against a data directory this process cannot open itself."""
    out = subprocess.run(
        [sys.executable, "-m", "stitchboard", "sql", "--clickhouse", clickhouse, query],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class InProcess:
    """Components running on an event loop in a background thread (for in-process tests)."""

    def __init__(self, components: list[Component]):
        self.components = components
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> InProcess:
        self.thread.start()
        for component in self.components:
            asyncio.run_coroutine_threadsafe(component.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        for component in reversed(self.components):
            asyncio.run_coroutine_threadsafe(component.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def make_runtime(store, sink=None, config=None, spool: Path | None = None, **settings):
    """A Runtime on the test store (or another Sink) without starting a server.

    With ``spool`` the writer acknowledges from a spool in that directory; its loader
    starts with ``runtime.writer.start()`` (after the raw inserters are registered).
    """
    from stitchboard.config import load_config
    from stitchboard.metrics import Metrics
    from stitchboard.phi import Pseudonymizer
    from stitchboard.runtime import Runtime
    from stitchboard.settings import Settings
    from stitchboard.spool import Journal, SpooledWriter
    from stitchboard.writer import BatchWriter, IngestWriter

    if sink is not None:
        settings.setdefault("native_decode", False)  # the engine decoder needs the real store
    settings.setdefault("bootstrap_token", TEST_ADMIN_TOKEN)
    # Files a console writes (export bundles, the signing key) go to a temporary directory.
    scratch = Path(tempfile.mkdtemp(prefix="stitchboard-runtime-"))
    atexit.register(shutil.rmtree, scratch, True)  # not left behind by the test run
    settings.setdefault("exports_dir", scratch / "exports")
    settings.setdefault("export_key_file", scratch / "export-signing-key.pem")
    cfg = Settings(clickhouse=store.url, database=store.database, **settings)
    metrics = Metrics()
    writer: IngestWriter
    if spool is not None:
        journal = Journal(spool, max_bytes=cfg.spool_max_bytes, retry_after=cfg.retry_after_seconds)
        writer = SpooledWriter(
            sink or store,
            journal,
            batch_max_rows=cfg.batch_max_rows,
            metrics=metrics,
            retry_after=cfg.retry_after_seconds,
            linger=0.02,
            backoff=(0.05, 0.2),
        )
    else:
        writer = BatchWriter(
            sink or store,
            max_rows=cfg.queue_max_rows,
            batch_max_rows=cfg.batch_max_rows,
            metrics=metrics,
            retry_after=cfg.retry_after_seconds,
        )
    return Runtime(
        settings=cfg,
        config=config or load_config(ROOT / "slas.yaml"),
        store=store,
        writer=writer,
        metrics=metrics,
        pseudonymize=Pseudonymizer(TEST_KEY.encode()),
        spool_dir=spool,
    )
