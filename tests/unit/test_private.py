"""Private-data detection: each kind found where it is, checksums keep look-alikes out, and only kinds come back."""

from __future__ import annotations

import pytest

from router.private import find, message_text

ALL = ("email", "card", "iban", "secret", "phone", "ipv4", "us_ssn")


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", ("email",)),
        ("card 4111 1111 1111 1111 exp 12/29", ("card",)),
        ("card 5500-0000-0000-0004", ("card",)),
        ("IBAN DE89 3704 0044 0532 0130 00 please", ("iban",)),
        ("GB82WEST12345698765432", ("iban",)),
        ("my key is sk-proj-abcdefghijklmnopqrstuvwxyz012345", ("secret",)),
        ("AKIAIOSFODNN7EXAMPLE", ("secret",)),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", ("secret",)),
        ("call +1 415 555 0132 tomorrow", ("phone",)),
        ("the box at 192.168.10.4 is down", ("ipv4",)),
        ("SSN 123-45-6789", ("us_ssn",)),
    ],
)
def test_each_kind_is_found(text: str, kinds: tuple[str, ...]) -> None:
    assert find(text, ALL) == kinds


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 shipped",  # 16 digits, Luhn fails
        "DE89 3704 0044 0532 0130 01",  # IBAN checksum fails
        "What is 1234567890123 mod 7?",  # 13 digits, Luhn fails
        "2 +3 4 5 = 14",  # arithmetic, not a phone number
        "version 1.2.3 of sk-learn, or 999.1.1.1",  # no key after sk-; three parts, or 999, are no IPv4 address
        "SSN 000-12-3456 is never issued",
        "Explain the sk- prefix and the @ sign in Python decorators.",
    ],
)
def test_look_alikes_are_not_private(text: str) -> None:
    assert find(text, ALL) == ()


def test_default_kinds_and_what_is_read_of_a_request() -> None:
    assert find("call +1 415 555 0132") == ()  # phone, ipv4 and us_ssn are opt-in
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "mail"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "tool_calls": [{"function": {"name": "send", "arguments": '{"to": "a@b.io"}'}}]},
    ]
    assert find(message_text(messages)) == ("email",)  # found in a tool call's arguments
