"""Long value lists written into a statement's text rather than bound.

clickhouse-connect binds a list parameter by escaping each value character by
character: for a lookup of tens of thousands of ids that cost more than the
lookup itself. Hex ids and most key values need no escaping at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.binding import format_str

if TYPE_CHECKING:
    from stitchboard.store.client import Store

_NEEDS_ESCAPE = re.compile(r"[\\'`\t\n]")
_MAX_QUERY_SIZE = 1 << 24


def string_array(values: Iterable[str]) -> str:
    """A ClickHouse array literal of strings, escaped as clickhouse-connect escapes a
    bound parameter (its ``format_str``), but only the values that need it."""
    needs = _NEEDS_ESCAPE.search
    return "[" + ",".join(format_str(v) if needs(v) else f"'{v}'" for v in values) + "]"


def literal_rows(
    store: Store, sql: str, parameters: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Rows of a statement that carries its values as literals: its text may be
    longer than the engine's default 256 KiB limit, so the limit follows it."""
    settings = {"max_query_size": max(_MAX_QUERY_SIZE, 2 * len(sql))}
    rows: list[tuple[Any, ...]] = store.query(sql, parameters, settings=settings).result_rows
    return rows
