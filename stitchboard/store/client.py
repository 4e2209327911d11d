"""The one place that builds a clickhouse-connect client from the store URL.

``chdb://<dir>`` opens the real ClickHouse engine embedded in this process (one
process owns a data directory, and a process can open only one).
``http(s)://user:password@host:port/db`` talks to a ClickHouse server.
Each thread gets its own client: clickhouse-connect clients serialize their
calls, so sharing one would serialize the ingest writer behind API reads.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, ProgrammingError

from stitchboard.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    from stitchboard.store.schema import Migration

log = logging.getLogger(__name__)

# Statements that may change a table's columns: each forgets the cached insert types.
_DDL = re.compile(r"\s*(CREATE|ALTER|DROP|RENAME|EXCHANGE|ATTACH|DETACH|REPLACE)\b", re.I)


class Store:
    """A database on ClickHouse, embedded or remote, optionally on a cluster."""

    def __init__(self, url: str, database: str = "stitchboard", cluster: str | None = None):
        self.url = url
        self.cluster = cluster
        parts = urlsplit(url)
        self.embedded = parts.scheme == "chdb"
        if parts.scheme not in ("chdb", "http", "https"):
            raise ConfigError(
                "clickhouse",
                [
                    f"unsupported store URL scheme {parts.scheme!r} in {url!r}"
                    " (use chdb://<dir> or http(s)://host:port/db)"
                ],
            )
        if self.embedded:
            self.path: Path | None = Path(unquote(parts.netloc + parts.path) or "./data").resolve()
            self.database = database
        else:
            self.path = None
            self.database = parts.path.strip("/") or database
        self._local = threading.local()
        self._admin_lock = threading.Lock()
        # Column types of each (table, columns) inserted into: without them every insert
        # first runs DESCRIBE TABLE (a round trip; about a tenth of a small insert's cost
        # on the embedded engine). Forgotten on any DDL this store runs, and on a failed
        # insert: a table another process changes (a migration on a shared server) costs
        # at most one failed insert, or the engine converts the block's types.
        self._insert_types: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._ddl_runs = 0  # DDL statements finished: types described across one are dropped

    # -- clients -----------------------------------------------------------------

    def _new_client(self, database: str | None) -> Client:
        try:
            if self.embedded:
                assert self.path is not None
                self.path.mkdir(parents=True, exist_ok=True)
                return clickhouse_connect.get_client(
                    interface="chdb", path=str(self.path), database=database
                )
            parts = urlsplit(self.url)
            return clickhouse_connect.get_client(
                interface=parts.scheme,
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=database or "default",
                connect_timeout=5,
                send_receive_timeout=60,
                autogenerate_session_id=False,
            )
        except ClickHouseError as exc:
            raise StoreUnavailable(
                f"cannot connect to ClickHouse at {self.display_url}: {exc}"
            ) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot connect to ClickHouse at {self.display_url}: {exc}"
            ) from exc

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and health output."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (
                f":{parts.port}" if parts.port else ""
            )
            return parts._replace(netloc=netloc).geturl()
        return self.url

    def client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._new_client(self.database)
            self._local.client = client
        return client

    def _drop_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not mask the cause
                log.debug("closing a failed client raised", exc_info=True)

    # -- statements ---------------------------------------------------------------

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def server_table(self, name: str) -> str:
        """A table each server holds itself, for a DELETE or a TRUNCATE: on a cluster,
        on every server (``ON CLUSTER``)."""
        return (
            f"{self.table(name)} ON CLUSTER `{self.cluster}`" if self.cluster else self.table(name)
        )

    def local_table(self, name: str) -> str:
        """The table that holds the rows, for a lightweight DELETE or a TRUNCATE: on a
        cluster the local table of every shard, since ``name`` is a Distributed table
        over them that holds none (a TRUNCATE of it succeeds and removes nothing)."""
        return self.server_table(name + "_local") if self.cluster else self.table(name)

    def truncate(self, name: str) -> None:
        """Empty a table of the schema, on every shard of a cluster."""
        self.command(f"TRUNCATE TABLE IF EXISTS {self.local_table(name)}")

    def ensure_database(self) -> None:
        on_cluster = f" ON CLUSTER `{self.cluster}`" if self.cluster else ""
        with self._admin_lock:
            admin = self._new_client(None)
            try:
                admin.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`{on_cluster}")
            except ClickHouseError as exc:
                raise StoreUnavailable(f"cannot create database {self.database!r}: {exc}") from exc
            finally:
                admin.close()

    def command(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if not _DDL.match(sql):
            return self._call(lambda c: c.command(sql, parameters=parameters, **kwargs))
        try:
            return self._call(lambda c: c.command(sql, parameters=parameters, **kwargs))
        finally:
            self._ddl_runs += 1
            self._insert_types.clear()

    def query(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._call(lambda c: c.query(sql, parameters=parameters, **kwargs))

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.query(sql, parameters).result_rows
        return rows

    def dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.query(sql, parameters).named_results())

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = self.rows(sql, parameters)
        return rows[0][0] if rows else None

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        settings: dict[str, Any] | None = None,
    ) -> None:
        """Insert ``rows``; ``settings`` are the engine's, for this insert only."""
        if not rows:
            return
        key = (self.table(table), tuple(columns))
        types = self._insert_types.get(key)
        if types is None:
            runs = self._ddl_runs
            types = self._call(lambda c: _column_types(c, key[0], key[1]))
            if runs == self._ddl_runs:  # no DDL finished meanwhile: still the table's
                self._insert_types[key] = types
        try:
            self._call(lambda c: _insert(c, key[0], columns, rows, types, settings))
        except Exception:
            self._insert_types.pop(key, None)  # the table may have changed under us
            raise

    def stream_rows(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Iterator[Sequence[Sequence[Any]]]:
        """Rows in blocks, read as they arrive, with the errors of ``_call``.

        A failure while opening the stream or between two blocks is translated the
        same way (``StoreUnavailable`` for a lost connection or an OS error); an
        exception raised by the consumer of a block is never translated.
        """
        try:
            context: AbstractContextManager[Iterable[Sequence[Sequence[Any]]]] = (
                self.client().query_row_block_stream(sql, parameters=parameters, settings=settings)
            )
            stream = context.__enter__()
            blocks = iter(stream)
        except Exception as exc:  # noqa: BLE001 - translated or re-raised as it was
            self._translate(exc)
            raise
        try:
            while True:
                try:
                    block = next(blocks)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - translated or re-raised as it was
                    self._translate(exc)
                    raise
                yield block
        finally:
            try:
                context.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask the cause
                log.debug("closing a row stream raised", exc_info=True)

    def ping(self) -> bool:
        try:
            return bool(self.scalar("SELECT 1") == 1)
        except StoreUnavailable:
            return False

    def _call(self, fn: Callable[[Client], Any]) -> Any:
        try:
            return fn(self.client())
        except Exception as exc:  # noqa: BLE001 - translated or re-raised as it was
            self._translate(exc)
            raise

    def _translate(self, exc: Exception) -> None:
        """Raise ``StoreUnavailable`` for a lost connection or an OS error; otherwise
        return, and the caller re-raises the original error."""
        if isinstance(exc, OSError) or (
            isinstance(exc, ClickHouseError) and _is_connection_problem(exc)
        ):
            self._drop_client()
            raise StoreUnavailable(f"ClickHouse at {self.display_url}: {exc}") from exc

    def close(self) -> None:
        self._drop_client()


def _column_types(client: Client, table: str, columns: Sequence[str]) -> list[str]:
    """The type names of ``columns`` of ``table``, as an insert needs them."""
    described = {
        row[0]: row[1].replace("\n", "").strip()
        for row in client.query(f"DESCRIBE TABLE {table}").result_rows
    }
    missing = [c for c in columns if c not in described]
    if missing:
        raise ProgrammingError(f"Unrecognized column {missing[0]!r} in table {table}")
    return [described[c] for c in columns]


def _insert(
    client: Client,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    types: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """``client.insert``, leaving nothing for the cyclic collector.

    clickhouse-connect's insert context keeps a bound method of itself (a reference
    cycle) beside the rows, so after an insert the rows are freed only by a cyclic
    collection. The correlator pauses those while it correlates and writes: a rebuild
    kept every row it had written until it ended. Breaking the cycle lets reference
    counting free the rows as soon as the insert returns."""
    context = client.create_insert_context(
        table, column_names=list(columns), data=rows, column_type_names=types, settings=settings
    )
    try:
        client.data_insert(context)
    finally:
        vars(context).pop("_next_block_data", None)


def _is_connection_problem(exc: ClickHouseError) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, OperationalError)


def connect(
    url: str,
    database: str = "stitchboard",
    cluster: str | None = None,
    migrate: bool = True,
    migrations: Sequence[Migration] = (),
) -> Store:
    """Open the store and apply the kernel's migrations and ``migrations``.

    Stages hand over their migrations through ``stitchboard.stages``; its
    ``open_store`` opens a store with every served stage's schema.
    """
    from stitchboard.store.schema import migrate as run_migrations

    store = Store(url, database=database, cluster=cluster)
    if migrate:
        store.ensure_database()
        run_migrations(store, migrations)
    return store
