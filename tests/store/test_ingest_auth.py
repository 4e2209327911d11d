"""Ingest authentication: OTLP/HTTP and OTLP/gRPC need an ingest token when it is on;
MLLP accepts only the allowed sender networks."""

from __future__ import annotations

import datetime as dt
import socket

import grpc
import httpx
import pytest
from google.rpc import status_pb2

from collector.grpc_server import TRACE_METHOD, OtlpGrpc
from collector.http import build_app
from collector.mllp import listener as mllp_listener
from stitchboard import credentials
from stitchboard.components import HttpComponent
from stitchboard.errors import ConfigError
from stitchboard.ingest_auth import SenderNetworks
from stitchboard.roles import Role
from tests.otlp_factory import spans_request
from tests.support import InProcess, free_port, make_runtime

PB = {"content-type": "application/x-protobuf"}
METHOD = f"/{TRACE_METHOD[0]}/{TRACE_METHOD[1]}"


@pytest.fixture(scope="module")
def tokens(store) -> dict[Role, str]:
    day = dt.timedelta(days=1)
    return {
        role: credentials.create_token(store, f"in-{role.value}", role, "test", day)[1]
        for role in (Role.INGEST, Role.VIEWER)
    }


@pytest.fixture(scope="module")
def doors(store):
    runtime = make_runtime(store, ingest_auth=True)
    http_port, grpc_port = free_port(), free_port()
    http = HttpComponent("otlp", build_app(runtime), "127.0.0.1", http_port, "OTLP")
    with InProcess([http, OtlpGrpc(runtime, "127.0.0.1", grpc_port)]):
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    runtime.writer.close()


def test_otlp_http_needs_an_ingest_token(doors, tokens):
    url, _ = doors
    body = spans_request(2, seed=11).SerializeToString()
    for headers in ({}, {"Authorization": "Bearer sbt_x_y"}, {"Authorization": "Basic abc"}):
        refused = httpx.post(f"{url}/v1/traces", content=body, headers={**PB, **headers})
        assert refused.status_code == 401
        status = status_pb2.Status.FromString(refused.content)
        assert status.code == 16 and "ingest token" in status.message  # UNAUTHENTICATED
        assert "sbt_x_y" not in refused.text
    viewer = {**PB, "Authorization": f"Bearer {tokens[Role.VIEWER]}"}
    assert httpx.post(f"{url}/v1/traces", content=body, headers=viewer).status_code == 401
    ingest = {**PB, "Authorization": f"Bearer {tokens[Role.INGEST]}"}
    assert httpx.post(f"{url}/v1/traces", content=body, headers=ingest).status_code == 200


def test_otlp_grpc_needs_an_ingest_token(doors, tokens):
    _, target = doors
    body = spans_request(2, seed=12).SerializeToString()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(body, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        meta = (("authorization", f"Bearer {tokens[Role.INGEST]}"),)
        assert call(body, timeout=10, metadata=meta) == b""  # an empty, full success


def test_sender_networks():
    allow = SenderNetworks(["10.20.0.0/16", "192.0.2.7"])
    assert allow.allows("10.20.3.4") and allow.allows("192.0.2.7")
    assert not allow.allows("10.21.0.1") and not allow.allows("127.0.0.1")
    assert not allow.allows("not an address")
    assert SenderNetworks([]).allows("203.0.113.9")
    with pytest.raises(ConfigError, match=r"mllp_allow\[1\]"):
        SenderNetworks(["10.0.0.0/8", "10.0.0.300"])


def test_mllp_cuts_off_a_sender_outside_the_allowed_networks(store):
    runtime = make_runtime(store, mllp_port=free_port(), mllp_allow=["10.0.0.0/8"])
    listener = mllp_listener(runtime)
    with InProcess([listener]), socket.create_connection(("127.0.0.1", listener.port)) as sock:
        sock.settimeout(10)
        try:
            sock.sendall(b"\x0bMSH|^~\\&|EHR|NMC01|||20260310||ADT^A03|X1|P|2.5\r\x1c\r")
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""  # closed while the message was unread
        assert answer == b""  # closed without an ACK
    runtime.writer.close()
