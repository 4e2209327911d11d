"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs`` (default port 4318).

Follows the OTLP/HTTP specification: protobuf or JSON on the same path, the
response in the request's encoding, gzip request bodies, ``partial_success`` for
rejected records, 400 (never retried) for undecodable bodies with a
``google.rpc.Status`` body, 413 past the size limit, 415 for unknown media types
or encodings, 429/503 with Retry-After for overload and storage outages.
"""

from __future__ import annotations

import logging
import zlib

from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.errors import BodyTooLarge, UndecodableBody, UnsupportedMediaType
from collector.ingest import LOGS, TRACES, OtlpIngest, Signal, otlp_ingest
from collector.otlp import JSON, PROTOBUF, Decoded, media_type
from collector.otlp_json import to_json
from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.ingest_auth import IngestGuard, token_check
from stitchboard.metrics import Metrics
from stitchboard.runtime import Runtime
from stitchboard.settings import Settings

log = logging.getLogger(__name__)

# Google's rpc codes, used in the Status body of error responses.
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL, UNAUTHENTICATED = 3, 8, 14, 13, 16


async def read_body(request: Request, limit: int) -> bytes:
    """The decompressed body; raises BodyTooLarge / UnsupportedMediaType / UndecodableBody."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"body of {length} bytes is over the {limit}-byte limit")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; use gzip")
    chunks: list[bytes] = []
    size = 0
    inflater = None
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj()
    try:
        async for chunk in request.stream():
            if inflater is not None:
                chunk = inflater.decompress(chunk, limit + 1 - size)
                if inflater.unconsumed_tail:
                    raise BodyTooLarge(f"decompressed body is over the {limit}-byte limit")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body is over the {limit}-byte limit")
            chunks.append(chunk)
        if inflater is not None:
            if not inflater.eof:
                raise UndecodableBody(f"truncated {encoding} body")
            rest = inflater.flush()
            size += len(rest)
            if size > limit:
                raise BodyTooLarge(f"decompressed body is over the {limit}-byte limit")
            chunks.append(rest)
    except zlib.error as exc:
        raise UndecodableBody(f"body is not valid {encoding}: {exc}") from exc
    return b"".join(chunks)


def _encoding_of(request: Request) -> str:
    try:
        return media_type(request.headers.get("content-type"))
    except UnsupportedMediaType:
        return PROTOBUF


def status_response(
    status: int, code: int, message: str, encoding: str, headers: dict[str, str] | None = None
) -> Response:
    body = status_pb2.Status(code=code, message=message)
    if encoding == JSON:
        return Response(to_json(body), status, headers, media_type=JSON)
    return Response(body.SerializeToString(), status, headers, media_type=PROTOBUF)


def success_response(signal: Signal, decoded: Decoded, encoding: str) -> Response:
    response = signal.export_response(decoded)
    if encoding == JSON:
        return Response(to_json(response), 200, media_type=JSON)
    return Response(response.SerializeToString(), 200, media_type=PROTOBUF)


def build_app(runtime: Runtime, ingest: OtlpIngest | None = None) -> Starlette:
    """The server's OTLP/HTTP receiver; ``ingest`` is shared when gRPC runs beside it."""
    settings = runtime.settings
    guard = IngestGuard(token_check(runtime.store), settings.ingest_auth, settings.bootstrap_token)
    return otlp_app(settings, runtime.metrics, ingest or otlp_ingest(runtime), guard)


def otlp_app(
    settings: Settings, metrics: Metrics, ingest: OtlpIngest, guard: IngestGuard
) -> Starlette:
    """``POST /v1/traces`` and ``/v1/logs`` (in the server or in the receivers' process)."""
    retry = {"Retry-After": str(settings.retry_after_seconds)}

    def endpoint(signal: Signal):
        async def handle(request: Request) -> Response:
            encoding = _encoding_of(request)
            outcome = "ok"
            try:
                if not await guard.allowed(request.headers.get("authorization")):
                    outcome = "unauthenticated"
                    return status_response(
                        401,
                        UNAUTHENTICATED,
                        "missing or invalid ingest token (Authorization: Bearer)",
                        encoding,
                        {"WWW-Authenticate": 'Bearer realm="stitchboard-ingest"'},
                    )
                encoding = media_type(request.headers.get("content-type"))
                body = await read_body(request, settings.max_body_bytes)
                decoded = await ingest.ingest_bytes(signal, body, encoding)
                if decoded.rejected:
                    outcome = "partial"
                return success_response(signal, decoded, encoding)
            except UnsupportedMediaType as exc:
                outcome = "unsupported"
                return status_response(415, INVALID_ARGUMENT, str(exc), encoding)
            except BodyTooLarge as exc:
                outcome = "too_large"
                return status_response(413, INVALID_ARGUMENT, str(exc), encoding)
            except UndecodableBody as exc:
                outcome = "undecodable"
                return status_response(400, INVALID_ARGUMENT, str(exc), encoding)
            except Overloaded as exc:
                outcome = "overloaded"
                return status_response(429, RESOURCE_EXHAUSTED, str(exc), encoding, retry)
            except StoreUnavailable as exc:
                outcome = "store_unavailable"
                return status_response(
                    503, UNAVAILABLE, f"store unavailable: {exc}", encoding, retry
                )
            except Exception:  # noqa: BLE001 - the server must answer, never crash
                log.exception("OTLP/HTTP %s request failed", signal.name)
                outcome = "error"
                return status_response(500, INTERNAL, "internal error; see server log", encoding)
            finally:
                metrics.requests.labels(signal.name, outcome).inc()

        return handle

    routes = [
        Route("/v1/traces", endpoint(TRACES), methods=["POST"]),
        Route("/v1/logs", endpoint(LOGS), methods=["POST"]),
    ]
    return Starlette(routes=routes)
