"""What every stage of a running server shares: settings, slas.yaml, store, writer, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from stitchboard.config import SlasConfig, load_config
from stitchboard.metrics import Metrics
from stitchboard.phi import Pseudonymizer, load_key
from stitchboard.settings import Settings
from stitchboard.stages import open_store
from stitchboard.store import Store
from stitchboard.writer import BatchWriter


@dataclass
class Runtime:
    settings: Settings
    config: SlasConfig
    store: Store
    writer: BatchWriter
    metrics: Metrics
    pseudonymize: Pseudonymizer

    def close(self) -> None:
        self.writer.close()
        self.store.close()


def build_runtime(settings: Settings) -> Runtime:
    """Load slas.yaml, open the store and apply every stage's migrations, start the writer."""
    config = load_config(settings.config)
    store = open_store(settings.clickhouse, database=settings.database, cluster=settings.cluster)
    metrics = Metrics()
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
    )
