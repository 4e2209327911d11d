"""Signed export bundles: what auditors take away, and how they check it later."""

from exports.bundle import Selection, write_bundle
from exports.verify import BundleReport, verify_bundle

__all__ = ["BundleReport", "Selection", "verify_bundle", "write_bundle"]
