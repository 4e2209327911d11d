"""Pseudonyms are keyed HMAC-SHA256 (RFC 2104), whatever the key's length."""

from __future__ import annotations

import hmac

import pytest

from stitchboard.phi import PREFIX, Pseudonymizer


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 100])
def test_a_pseudonym_is_the_hmac_of_the_trimmed_value(length):
    key = bytes(range(7, 7 + length))
    pseudonymize = Pseudonymizer(key)
    for value in ("MRN00482917", " 0042 ", "Müller^Anna", "x" * 200):
        expected = hmac.new(key, value.strip().encode(), "sha256").hexdigest()[:32]
        assert pseudonymize(value) == PREFIX + expected


def test_a_pseudonym_is_kept_and_empty_stays_empty():
    pseudonymize = Pseudonymizer(b"0123456789abcdef")
    once = pseudonymize("MRN1")
    assert pseudonymize(once) == once
    assert pseudonymize("") == ""
    assert pseudonymize("MRN1") == once  # the cached answer is the same
