"""The collector stage: OTLP/HTTP, OTLP/gRPC and MLLP listeners, message and dead-letter routes."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from fastapi import APIRouter

from collector.grpc_server import OtlpGrpc
from collector.http import build_app
from collector.import_state import MIGRATIONS
from collector.ingest import otlp_ingest
from collector.mllp import listener as mllp_listener
from collector.receiver_process import receiver_process
from stitchboard.components import Component, HttpComponent
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration


class CollectorStage(Stage):
    name = "collector"

    def migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def components(self, runtime: Runtime) -> list[Component]:
        settings = runtime.settings
        result: list[Component] = []
        # One ingest path for both OTLP transports: one engine-side decoder per server.
        ingest = otlp_ingest(runtime)
        # With the spool: MLLP and OTLP/HTTP in a process of their own (gRPC stays here).
        receivers = receiver_process(runtime)
        if receivers is not None:
            result.append(receivers)
        elif settings.otlp_http_port:
            app = build_app(runtime, ingest)
            result.append(
                HttpComponent("otlp-http", app, settings.host, settings.otlp_http_port, "OTLP/HTTP")
            )
        if settings.otlp_grpc_port:
            result.append(OtlpGrpc(runtime, settings.host, settings.otlp_grpc_port, ingest))
        if settings.mllp_port and receivers is None:
            result.append(mllp_listener(runtime))
        return result

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        from collector import dead_letters, messages_api

        return [messages_api.router(runtime), dead_letters.router(runtime)]

    def commands(self, cli: typer.Typer) -> None:
        from collector import dead_letters_cli, import_cli

        import_cli.register(cli)
        dead_letters_cli.register(cli)


STAGE = CollectorStage()
