"""Optional TLS for the MLLP listener (MLLP itself has no encryption or credentials).

With ``mllp_tls_cert`` and ``mllp_tls_key`` set the listener speaks only TLS
(1.2 or newer); with ``mllp_tls_client_ca`` too, a sender must present a
certificate signed by that CA (mutual TLS), which is the only credential an
interface engine can offer over MLLP. Problems with the files are reported at
start, naming the setting and the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from stitchboard.errors import ConfigError
from stitchboard.settings import Settings


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context; raises ConfigError naming every unusable file."""
    problems = [
        f"{name}: no file {path}"
        for name, path in (
            ("mllp_tls_cert", cert),
            ("mllp_tls_key", key),
            ("mllp_tls_client_ca", client_ca),
        )
        if path is not None and not path.is_file()
    ]
    if problems:
        raise ConfigError("settings", problems)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            "settings", [f"mllp_tls_cert/mllp_tls_key: {cert}, {key} unusable ({exc.reason})"]
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise ConfigError(
                "settings", [f"mllp_tls_client_ca: {client_ca} unusable ({exc.reason})"]
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def context_from(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when TLS is not configured."""
    cert, key, ca = settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_client_ca
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError("settings", ["mllp_tls_client_ca: needs mllp_tls_cert and _key"])
        return None
    if cert is None or key is None:
        missing = "mllp_tls_key" if key is None else "mllp_tls_cert"
        raise ConfigError("settings", [f"{missing}: TLS needs both mllp_tls_cert and _key"])
    return server_context(cert, key, ca)
