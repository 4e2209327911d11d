"""MLLP over TLS with a real TLS client and certificates made here with ``cryptography``.

A CA signs the listener's certificate (for 127.0.0.1) and one sender's client
certificate. The server takes TLS only; with a client CA it takes only senders
holding a certificate from that CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import hl7
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.intake import Intake
from collector.mllp import MllpListener
from collector.mllp_tls import context_from, server_context
from stitchboard.errors import ConfigError
from stitchboard.settings import Settings
from tests.store.test_mllp import events_with, frame, message, read_acks
from tests.support import InProcess, make_runtime


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Stitchboard test CA", ca_key, None, ca=True)
    _write(directory, "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    _write(
        directory,
        "server",
        _issue("mllp", server_key, (ca.subject, ca_key), ip="127.0.0.1"),
        server_key,
    )
    engine_key = ec.generate_private_key(ec.SECP256R1())
    _write(directory, "engine", _issue("engine", engine_key, (ca.subject, ca_key)), engine_key)
    return directory


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


def _listener(runtime, tls: ssl.SSLContext) -> MllpListener:
    return MllpListener(
        Intake(runtime.config, runtime.pseudonymize), runtime.writer.write, port=0, tls=tls
    )


@pytest.fixture(scope="module")
def tls_listener(runtime, pki):
    mllp = _listener(runtime, server_context(pki / "server.pem", pki / "server.key"))
    with InProcess([mllp]):
        yield mllp


@pytest.fixture(scope="module")
def mutual_listener(runtime, pki):
    context = server_context(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    mllp = _listener(runtime, context)
    with InProcess([mllp]):
        yield mllp


def tls_client(pki: Path, port: int, with_cert: bool = False) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=pki / "ca.pem")  # verifies the server
    if with_cert:
        context.load_cert_chain(pki / "engine.pem", pki / "engine.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def send(sock: socket.socket, control_id: str) -> list[hl7.Message]:
    sock.sendall(frame(message(control_id)))
    return read_acks(sock, 1)


def test_a_tls_sender_gets_aa_and_the_message_is_stored(tls_listener, pki, store):
    assert tls_listener.describe().endswith(f"mllps://127.0.0.1:{tls_listener.port}")
    with tls_client(pki, tls_listener.port) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        [ack] = send(sock, "TLS0001")
    assert (str(ack["MSA.F1"]), str(ack["MSA.F2"])) == ("AA", "TLS0001")
    assert events_with(store, "msg", "TLS0001") == 1


def test_a_plain_text_sender_is_not_heard(tls_listener, store):
    with socket.create_connection(("127.0.0.1", tls_listener.port), timeout=10) as sock:
        sock.sendall(frame(message("PLAIN0001")))
        sock.settimeout(10)
        try:
            reply = sock.recv(65536)
        except ConnectionResetError:
            reply = b""
    # The bytes are not a TLS handshake: no ACK (at most a TLS alert), no event.
    assert b"MSA" not in reply
    assert events_with(store, "msg", "PLAIN0001") == 0


def test_mutual_tls_takes_only_senders_with_a_certificate_from_the_ca(mutual_listener, pki, store):
    with tls_client(pki, mutual_listener.port, with_cert=True) as sock:
        [ack] = send(sock, "MTLS0001")
    assert (str(ack["MSA.F1"]), str(ack["MSA.F2"])) == ("AA", "MTLS0001")
    refused = False
    try:
        with tls_client(pki, mutual_listener.port) as sock:  # no client certificate
            refused = send(sock, "MTLS0002") == []
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        refused = True  # TLS 1.2 fails the handshake; TLS 1.3 the first read
    assert refused
    assert events_with(store, "msg", "MTLS0001") == 1
    assert events_with(store, "msg", "MTLS0002") == 0


def test_tls_settings_are_checked_at_start_naming_the_setting(pki, tmp_path):
    assert context_from(Settings()) is None
    with pytest.raises(ConfigError) as half:
        context_from(Settings(mllp_tls_cert=pki / "server.pem"))
    assert "mllp_tls_key: TLS needs both mllp_tls_cert and _key" in str(half.value)
    with pytest.raises(ConfigError) as missing:
        context_from(Settings(mllp_tls_cert=tmp_path / "nope.pem", mllp_tls_key=pki / "server.key"))
    assert f"mllp_tls_cert: no file {tmp_path / 'nope.pem'}" in str(missing.value)
    with pytest.raises(ConfigError) as wrong:  # the engine's key does not match the server's cert
        context_from(Settings(mllp_tls_cert=pki / "server.pem", mllp_tls_key=pki / "engine.key"))
    assert "mllp_tls_cert/mllp_tls_key:" in str(wrong.value)
    assert (
        context_from(
            Settings(mllp_tls_cert=pki / "server.pem", mllp_tls_key=pki / "server.key")
        ).verify_mode
        is ssl.CERT_NONE
    )
