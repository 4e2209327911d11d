"""What every stage of a running server shares: settings, slas.yaml, store, writer, metrics."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stitchboard.config import SlasConfig, load_config
from stitchboard.disks import DiskCollector, DiskSpace
from stitchboard.errors import ConfigError
from stitchboard.metrics import Metrics
from stitchboard.phi import Pseudonymizer, load_key
from stitchboard.settings import Settings
from stitchboard.stages import open_store
from stitchboard.store import Store
from stitchboard.writer import BatchWriter, IngestWriter

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    config: SlasConfig
    store: Store
    writer: IngestWriter
    metrics: Metrics
    pseudonymize: Pseudonymizer
    # Called with the new slas.yaml after a reload: parts that compile it rebuild.
    config_listeners: list[Callable[[SlasConfig], None]] = field(default_factory=list)
    spool_dir: Path | None = None  # the ingest spool's directory, when senders are spooled
    disk_watch: DiskCollector = field(init=False)

    def __post_init__(self) -> None:
        self.disk_watch = DiskCollector(self.store, self.spool_dir)
        # stitchboard_disk_*_bytes; a copy of a runtime (``dataclasses.replace``) shares
        # its metrics, where the original's collector is registered already.
        with contextlib.suppress(ValueError):
            self.metrics.registry.register(self.disk_watch)

    def disks(self) -> list[DiskSpace]:
        """The store's disks and the spool's filesystem (at most 10 s old)."""
        return self.disk_watch.read()

    def on_config(self, listener: Callable[[SlasConfig], None]) -> None:
        self.config_listeners.append(listener)

    def reload_config(self) -> list[str]:
        """Re-read slas.yaml; every problem of a bad file, and the running one stays.

        The new configuration replaces the old in one assignment, then every part
        that compiled the old one (decoders, intake, correlator) is told. Returns
        the problems (empty when reloaded).
        """
        with _RELOAD:
            try:
                config = load_config(self.settings.config)
            except ConfigError as exc:
                return str(exc).splitlines()
            self.config = config
            for listener in self.config_listeners:
                try:
                    listener(config)
                except Exception:  # noqa: BLE001 - one part failing must not stop the rest
                    log.exception("applying the reloaded slas.yaml failed in %r", listener)
            log.info("slas.yaml reloaded from %s", self.settings.config)
            return []

    def close(self) -> None:
        self.writer.close()
        self.store.close()


_RELOAD = threading.Lock()


def build_runtime(settings: Settings, spool: bool = False) -> Runtime:
    """Load slas.yaml, open the store and apply every stage's migrations, set up the writer.

    With ``spool`` (``stitchboard serve``, unless ``settings.spool`` is off) senders are
    acknowledged from the spool and a loader moves their batches into the store, started
    by ``writer.start()`` once every stage has registered its raw inserters; otherwise
    (command-line tools) the writer inserts directly and acknowledges after the insert.
    """
    config = load_config(settings.config)
    store = open_store(settings.clickhouse, database=settings.database, cluster=settings.cluster)
    metrics = Metrics()
    writer: IngestWriter
    spool_dir = settings.spool_dir if spool and settings.spool else None
    if spool_dir is not None:
        from stitchboard.spool import open_spooled_writer

        writer = open_spooled_writer(
            store,
            spool_dir,
            max_bytes=settings.spool_max_bytes,
            segment_bytes=settings.spool_segment_bytes,
            batch_max_rows=settings.batch_max_rows,
            metrics=metrics,
            retry_after=settings.retry_after_seconds,
        )
    else:
        writer = BatchWriter(
            store,
            max_rows=settings.queue_max_rows,
            batch_max_rows=settings.batch_max_rows,
            metrics=metrics,
            retry_after=settings.retry_after_seconds,
        )
    pseudonymize = Pseudonymizer(load_key(settings.pseudonym_key, settings.pseudonym_key_file))
    return Runtime(
        settings=settings,
        config=config,
        store=store,
        writer=writer,
        metrics=metrics,
        pseudonymize=pseudonymize,
        spool_dir=spool_dir,
    )
