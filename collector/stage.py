"""The collector stage as mounted by ``stitchboard serve``: its listeners and routes."""

from __future__ import annotations

from collector.grpc_server import OtlpGrpc
from collector.http import build_app
from collector.mllp import listener as mllp_listener
from stitchboard.components import Component, HttpComponent
from stitchboard.runtime import Runtime


def components(runtime: Runtime) -> list[Component]:
    settings = runtime.settings
    result: list[Component] = []
    if settings.otlp_http_port:
        result.append(
            HttpComponent(
                "otlp-http", build_app(runtime), settings.host, settings.otlp_http_port, "OTLP/HTTP"
            )
        )
    if settings.otlp_grpc_port:
        result.append(OtlpGrpc(runtime, settings.host, settings.otlp_grpc_port))
    if settings.mllp_port:
        result.append(mllp_listener(runtime))
    return result


def routers(runtime: Runtime) -> list:
    from collector import dead_letters, messages_api

    return [messages_api.router(runtime), dead_letters.router(runtime)]
