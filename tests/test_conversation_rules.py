"""The small rules behind choosing a ticket, one by one."""
from datetime import datetime, timedelta, timezone

import pytest

from bot.conversations import REFERENCE, usable
from bot.desk import Ticket
from bot.phones import mask, to_e164

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def stamp(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("status, hours_ago, expected", [
    ("new", 500, True), ("open", 500, True), ("pending", 500, True), ("hold", 500, True),
    ("solved", 71, True), ("solved", 73, False), ("closed", 1, False),
])
def test_which_tickets_take_a_new_text(status, hours_ago, expected):
    assert usable(Ticket(1, status, 9, stamp(hours_ago)), 72, NOW) is expected


@pytest.mark.parametrize("text, number", [
    ("about #1234 please", "1234"), ("ticket 1234", "1234"), ("Ticket #98765", "98765"),
    ("case no. 4321 again", "4321"), ("mi caso 555", "555"),
])
def test_ticket_references_are_found(text, number):
    assert REFERENCE.search(text).group(1) == number


@pytest.mark.parametrize("text", ["my dog is 3 years old", "call me at 555 1234", "room #4"])
def test_ordinary_numbers_are_not_references(text):
    assert REFERENCE.search(text) is None


def test_phone_numbers_normalise_and_mask():
    assert to_e164("(650) 555-1199") == "+16505551199"
    assert to_e164("+44 20 7946 0958") == "+442079460958"
    assert to_e164("hello") is None
    assert mask("+16505551199") == "+1 ••• ••• 1199"
