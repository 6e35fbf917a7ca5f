"""Card numbers and SSNs masked before text goes anywhere (issue 4)."""
import pytest

from bot.redact import luhn_ok, redact


@pytest.mark.parametrize("raw, masked", [
    ("card 4111111111111111 please", "card [card ending 1111] please"),
    ("4111 1111 1111 1111", "[card ending 1111]"),
    ("4111-1111-1111-1111 exp 12/29", "[card ending 1111] exp 12/29"),
    ("amex 3782 822463 10005", "amex [card ending 0005]"),
    ("my ssn is 123-45-6789", "my ssn is [SSN ending 6789]"),
    ("SSN 123 45 6789", "SSN [SSN ending 6789]"),
    ("social security number: 123456789", "social security number: [SSN ending 6789]"),
])
def test_sensitive_numbers_are_masked_keeping_the_last_four(raw, masked):
    assert redact(raw) == masked


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@pytest.mark.parametrize("length", [12, 13, 15, 16, 19])
def test_every_card_length_from_12_to_19_digits_in_groups(length):
    number = with_check_digit("5" + "1234567890" * 2)[:length - 1]
    number = with_check_digit(number)
    grouped = " ".join(number[i:i + 4] for i in range(0, length, 4))
    assert redact(f"pay with {grouped} thanks") == f"pay with [card ending {number[-4:]}] thanks"


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112",          # fails Luhn
    "call me at 650-555-1199",      # a phone number
    "order 12345678901",            # 11 digits
    "case #123456789012345678901",  # too long to be a card
    "000-12-3456 is not an SSN",    # invalid area
    "my dog weighs 45 lbs",
])
def test_other_numbers_are_left_alone(text):
    assert redact(text) == text


def test_luhn():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
