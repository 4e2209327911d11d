"""``stitchboard export verify``: check a bundle's signature and every file's hash.

The signature is checked with a public key the verifier trusts (the server's,
downloaded from ``/api/v1/exports/public-key``), never with the copy inside the
bundle: someone who alters a bundle can re-sign it with a key of their own.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exports.bundle import MANIFEST, SIGNATURE
from exports.signing import fingerprint, signature_valid


@dataclass
class BundleReport:
    files_checked: int = 0
    transactions: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(path: Path, trusted: Ed25519PublicKey) -> BundleReport:
    """Every problem of the bundle at ``path``, each naming the file it concerns."""
    report = BundleReport()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(f"{path}: not a readable zip ({exc})")
        return report
    with zf:
        names = set(zf.namelist())
        for needed in (MANIFEST, SIGNATURE):
            if needed not in names:
                report.problems.append(f"{needed}: missing")
        if report.problems:
            return report
        manifest_bytes = zf.read(MANIFEST)
        signature = zf.read(SIGNATURE).decode("ascii", "replace").strip()
        if not signature_valid(trusted, manifest_bytes, signature):
            report.problems.append(
                f"{MANIFEST}: signature does not verify with the trusted key"
                f" {fingerprint(trusted)} (manifest altered, or signed by another key)"
            )
        try:
            manifest = json.loads(manifest_bytes)
            files = manifest["files"]
        except (ValueError, KeyError, TypeError):
            report.problems.append(f"{MANIFEST}: not a bundle manifest")
            return report
        report.transactions = int(manifest.get("transactions", 0))
        for name, entry in sorted(files.items()):
            if name not in names:
                report.problems.append(f"{name}: missing (listed in the manifest)")
                continue
            sha, size = hashlib.sha256(), 0
            try:
                with zf.open(name) as member:
                    while chunk := member.read(1 << 20):
                        sha.update(chunk)
                        size += len(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                report.problems.append(f"{name}: unreadable ({exc})")
                continue
            report.files_checked += 1
            if sha.hexdigest() != entry.get("sha256"):
                report.problems.append(
                    f"{name}: altered (SHA-256 {sha.hexdigest()}, manifest says"
                    f" {entry.get('sha256')})"
                )
            elif size != entry.get("bytes"):
                report.problems.append(
                    f"{name}: altered ({size} bytes, manifest says {entry.get('bytes')})"
                )
        for extra in sorted(names - set(files) - {MANIFEST, SIGNATURE}):
            report.problems.append(f"{extra}: not in the manifest (added)")
    return report
