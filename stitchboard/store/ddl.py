"""DDL generation for one server or a cluster.

On a cluster each table becomes ``<name>_local`` (Replicated* engine, created
``ON CLUSTER``) plus ``<name>``, a Distributed table over it, so every reader
and writer keeps using the plain name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENGINE = re.compile(r"^(\w*MergeTree)(?:\((.*)\))?$", re.S)


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    engine: str  # e.g. "MergeTree" or "ReplacingMergeTree(inserted_at)"
    tail: str  # PARTITION BY / ORDER BY / TTL / SETTINGS clauses
    shard_key: str = "rand()"


@dataclass(frozen=True)
class SchemaContext:
    database: str
    cluster: str | None = None

    def create(self, table: Table) -> list[str]:
        db = self.database
        if not self.cluster:
            return [
                f"CREATE TABLE IF NOT EXISTS `{db}`.`{table.name}` (\n{table.columns}\n)"
                f" ENGINE = {table.engine}\n{table.tail}"
            ]
        match = _ENGINE.match(table.engine)
        if not match:
            raise ValueError(f"cannot replicate engine {table.engine!r}")
        kind, args = match.group(1), match.group(2)
        local = f"{table.name}_local"
        replicated_args = f"'/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'"
        if args:
            replicated_args += f", {args}"
        on_cluster = f" ON CLUSTER `{self.cluster}`"
        return [
            f"CREATE TABLE IF NOT EXISTS `{db}`.`{local}`{on_cluster} (\n{table.columns}\n)"
            f" ENGINE = Replicated{kind}({replicated_args})\n{table.tail}",
            f"CREATE TABLE IF NOT EXISTS `{db}`.`{table.name}`{on_cluster}"
            f" AS `{db}`.`{local}`"
            f" ENGINE = Distributed(`{self.cluster}`, `{db}`, `{local}`, {table.shard_key})",
        ]

    def alter(self, table: str, action: str) -> list[str]:
        """ALTER a table; on a cluster both the local and the Distributed table."""
        db = self.database
        if not self.cluster:
            return [f"ALTER TABLE `{db}`.`{table}` {action}"]
        on_cluster = f" ON CLUSTER `{self.cluster}`"
        return [
            f"ALTER TABLE `{db}`.`{table}_local`{on_cluster} {action}",
            f"ALTER TABLE `{db}`.`{table}`{on_cluster} {action}",
        ]
