"""OTLP attribute values as the strings the ClickHouse exporter stores.

The exporter writes every attribute into ``Map(String, String)`` using the
pdata ``Value.AsString`` rules: booleans ``true``/``false``, integers in
decimal, doubles in shortest form, bytes base64, arrays and maps as JSON.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any

_EXPONENT = re.compile(r"e([+-])0*(\d)")


def _double(value: float) -> str:
    """Shortest round-trip form, as ClickHouse's toString(Float64) writes it (1e-7, 1e21)."""
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2]
    if "e" in text:
        return _EXPONENT.sub(lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)
    return text


def _python(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def value_string(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return _double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind is None:
        return ""
    return json.dumps(_python(value), separators=(",", ":"))


def to_dict(attributes: Iterable[Any]) -> dict[str, str]:
    """KeyValue list → dict. Most values are non-empty strings: read those without WhichOneof."""
    out: dict[str, str] = {}
    for kv in attributes:
        value = kv.value
        text = value.string_value
        out[kv.key] = text if text else value_string(value)
    return out
