"""PII redaction of free text and customer-id pseudonymisation (pure)."""

from __future__ import annotations

import pytest

from auditstream.stream.redact import hash_customer_id, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@example.co.uk today", "write to <email> today"),
        ("call +44 20 7946 0958 now", "call <phone> now"),
        ("or (555) 123-4567", "or <phone>"),
        ("phone 555.123.4567", "phone <phone>"),
        ("card 4111 1111 1111 1111 expires", "card <card> expires"),
        ("card 4111-1111-1111-1111", "card <card>"),
        ("pay to DE89 3704 0044 0532 0130 00 please", "pay to <iban> please"),
        ("GB82WEST12345698765432", "<iban>"),
    ],
)
def test_pii_is_replaced_by_typed_placeholders(text: str, expected: str) -> None:
    out, n = redact(text)
    assert out == expected
    assert n == 1


@pytest.mark.parametrize(
    "text",
    [
        "order 12345678901 shipped",  # a bare digit run is an id, not a phone
        "costs 1234.56 EUR",
        "on 2026-01-05 and at 2026-01-05T10:00:00",  # ISO dates look like phone numbers
        "version 1.2.3 on host 10.0.0.1",
        "4111-1111-1111-1112",  # fails the Luhn check and is too long for a phone
        "no digits or at-signs at all",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == (text, 0)


def test_several_matches_are_counted() -> None:
    out, n = redact("a@b.io, c@d.org and +1 415 555 2671")
    assert out == "<email>, <email> and <phone>"
    assert n == 3


def test_customer_hash_is_stable_keyed_and_not_the_id() -> None:
    a = hash_customer_id("cust-42", b"k1")
    assert a == hash_customer_id("cust-42", b"k1")
    assert a != hash_customer_id("cust-43", b"k1")
    assert a != hash_customer_id("cust-42", b"k2")  # keyed: no dictionary attack without the key
    assert a.startswith("c_") and len(a) == 34
    assert "cust-42" not in a
