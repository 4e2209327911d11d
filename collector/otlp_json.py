"""OTLP/JSON ↔ protobuf messages.

OTLP/JSON differs from the canonical protobuf JSON mapping in one way that
matters: trace and span ids are hex strings (any case), not base64. Enums may be
integers, and unknown fields are ignored (the OTLP specification requires both).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from collector.errors import UndecodableBody

ID_FIELDS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)

M = TypeVar("M", bound=Message)


def _hex_ids_to_base64(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key in ID_FIELDS and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise UndecodableBody(f"{where}: {value!r} is not a hex id") from exc
            else:
                out[key] = _hex_ids_to_base64(value, where)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item, f"{path}[{i}]") for i, item in enumerate(node)]
    return node


def parse_json(body: bytes, message: M) -> M:
    """Parse an OTLP/JSON body into ``message``; raises UndecodableBody naming the problem."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableBody(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UndecodableBody("body must be a JSON object")
    data = _hex_ids_to_base64(data, "")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise UndecodableBody(f"not an OTLP {message.DESCRIPTOR.name}: {exc}") from exc
    return message


def _base64_ids_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                binascii.hexlify(base64.b64decode(value)).decode()
                if key in ID_FIELDS and isinstance(value, str)
                else _base64_ids_to_hex(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_base64_ids_to_hex(item) for item in node]
    return node


def to_json(message: Message) -> bytes:
    """OTLP/JSON encoding (hex ids, camelCase names) of a message."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(_base64_ids_to_hex(data), separators=(",", ":")).encode()
