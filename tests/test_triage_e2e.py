"""Triage on real tickets (issue 4): priority, group, tags, the agent's summary note, the
emergency reply and the on-call alert, raising (never lowering) priority, redaction."""
import re

import pytest
import yaml

from bot import keys
from tests.conftest import run_jobs, shipped_runtime
from tests.test_conversation_e2e import CUSTOMER, text

ON_CALL = "+15005550009"


@pytest.fixture
def shipped(config, conn, tmp_path, monkeypatch):
    """The shipped settings (rules, on-call number), with emergency routed to group 360."""
    triage = yaml.safe_load(config.settings_path.read_text())["triage"]
    triage["categories"]["emergency"]["group_id"] = 360
    return shipped_runtime(config, tmp_path, monkeypatch, triage=triage)


def test_emergency_ticket_is_urgent_routed_noted_answered_and_on_call_alerted(
        client, conn, shipped, zendesk, twilio):
    text(client, "my dog got hit by a car and is bleeding!!")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "urgent" and ticket["group_id"] == 360
    assert {"hotline", "sms", "hotline_emergency", "injury", "lang_en"} <= set(ticket["tags"])
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert summary.startswith("Hotline triage: EMERGENCY — priority urgent")
    assert 'rule "injury" matched "hit by a car"' in summary
    assert "+1 555-123-0001" in summary and "earlier tickets: 0" in summary
    assert "San Bruno, CA, US" in summary and "texts: allowed" in summary
    assert "language: English" in summary
    sent = {m["to"]: m["body"] for m in twilio.sent()}
    assert "specialist has been alerted" in sent[CUSTOMER] and f"#{ticket['id']}" in sent[CUSTOMER]
    why = shipped.settings.triage.decide("my dog got hit by a car and is bleeding!!").why
    assert re.match(r'rule "injury" matched "hit by a car"; emergency score [01]\.\d\d; ', why), why
    assert "bleeding" in why.split("words that weighed most: ")[1].split(", ") and why in summary
    assert sent[ON_CALL] == (f"URGENT Hotline case #{ticket['id']} (emergency): {why}. "
                             f"Open it now: https://acme.zendesk.com/agent/tickets/{ticket['id']}")
    assert CUSTOMER[-4:] not in sent[ON_CALL]  # the alert carries the link, not the customer


def test_spanish_text_gets_the_spanish_reply(client, conn, shipped, zendesk, twilio):
    text(client, "mi perro se escapó del paseador y no lo encuentro")
    run_jobs(conn)
    reply = [m["body"] for m in twilio.sent() if m["to"] == CUSTOMER][0]
    assert reply.startswith("Recibimos tu mensaje") and "lang_es" in zendesk.all("ticket")[0]["tags"]


def test_later_message_raises_priority_with_a_note_and_never_lowers_it(client, conn, shipped, zendesk, twilio):
    text(client, "hi, question about my booking on friday")
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "normal"
    assert [m["to"] for m in twilio.sent()] == [CUSTOMER]

    text(client, "omg the dog just got out of the yard and ran away")
    run_jobs(conn)
    ticket = zendesk.all("ticket")[0]
    assert ticket["priority"] == "urgent"
    [raised] = zendesk.notes(ticket["id"])
    assert "raised the priority from normal to urgent" in raised and 'rule "lost-pet"' in raised
    emergency = [m for m in twilio.sent() if m["to"] == CUSTOMER][1]
    assert "specialist has been alerted" in emergency["body"]
    assert any(m["to"] == ON_CALL for m in twilio.sent())

    text(client, "ok thanks, what's the address of the vet?")
    run_jobs(conn)
    assert zendesk.all("ticket")[0]["priority"] == "urgent"
    assert len(zendesk.notes(ticket["id"])) == 1
    assert conn.hget(keys.ticket(ticket["id"]), "priority") == b"urgent"


def test_returning_customer_summary_counts_earlier_tickets(client, conn, shipped, zendesk, twilio):
    user = zendesk.add_user(CUSTOMER, name="Dana Owner")
    zendesk.add_ticket(user["id"], status="closed")
    zendesk.add_ticket(user["id"], status="solved")

    text(client, "the sitter never showed up and my cats are alone")
    run_jobs(conn)

    ticket = zendesk.all("ticket")[-1]
    assert ticket["priority"] == "high" and "hotline_safety" in ticket["tags"]
    summary = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]][0]
    assert "earlier tickets: 2" in summary and "SAFETY — priority high" in summary


def test_card_numbers_are_masked_before_redis_zendesk_and_logs(client, conn, shipped, zendesk, twilio, captured):
    text(client, "refund to my card 4111 1111 1111 1111 please, ssn 123-45-6789")
    pending = b"".join(m for k in conn.keys("hotline:pending:*") for m in conn.zrange(k, 0, -1))
    assert b"4111 1111 1111 1111" not in pending and b"[card ending 1111]" in pending

    run_jobs(conn)

    body = zendesk.texts(zendesk.all("ticket")[0]["id"])[0]
    assert body == "refund to my card [card ending 1111] please, ssn [SSN ending 6789]"
    everything = captured.text
    assert "conversation.written" in everything
    # The card's digits as the customer wrote them (a random hex id may hold "4111" by chance).
    assert "4111 1111" not in everything and "123-45" not in everything


def test_empty_and_emoji_texts_open_a_normal_ticket(client, conn, shipped, zendesk, twilio):
    text(client, "")
    text(client, "🐶🙏", sender="+15551230002")
    run_jobs(conn)
    assert [t["priority"] for t in zendesk.all("ticket")] == ["normal", "normal"]


def test_emergency_after_an_agent_lowered_the_priority_is_raised_and_alerted_again(
        client, conn, shipped, zendesk, twilio):
    text(client, "my dog got hit by a car")
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    zendesk.set_ticket(ticket["id"], priority="normal")  # the agent handled it and lowered it
    alerts_before = [m["to"] for m in twilio.sent()].count(ON_CALL)

    text(client, "he is bleeding again and collapsed")
    run_jobs(conn)

    ticket = zendesk.all("ticket")[0]
    assert ticket["priority"] == "urgent"
    assert any("raised the priority from normal to urgent" in n for n in zendesk.notes(ticket["id"]))
    assert [m["to"] for m in twilio.sent()].count(ON_CALL) == alerts_before + 1


def test_a_less_urgent_message_never_lowers_the_priority(client, conn, shipped, zendesk, twilio):
    text(client, "my dog got hit by a car")
    run_jobs(conn)
    text(client, "also the sitter threatened me")  # safety: high < urgent
    run_jobs(conn)
    assert zendesk.all("ticket")[0]["priority"] == "urgent"


def test_an_emergency_only_the_model_sees_is_urgent_with_the_score_and_words_on_the_note(
        client, conn, shipped, zendesk, twilio, captured):
    text(client, "rattler got him on the snout, Biscuit is drooling")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "urgent" and "hotline_emergency" in ticket["tags"]
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert re.search(r"emergency score [01]\.\d\d is at or above", summary), summary
    words = summary.split("words that weighed most: ")[1].split("\n")[0].split(", ")
    assert "rattler" in words and "biscuit" not in summary.lower()
    assert any(m["to"] == ON_CALL for m in twilio.sent())
    logged = captured.text
    assert "conversation.written" in logged
    assert "snout" not in logged and "Biscuit" not in logged  # no customer words in the logs


@pytest.mark.parametrize("body, matched", [
    ("lily bouquet ok?", "lily"),  # SPEC 5's example
    ("are lilies ok in a house with no pets? asking for a gift", "lilies"),  # a decoy of the corpus
])
def test_a_lone_keyword_the_model_vetoes_opens_a_normal_ticket_saying_so(client, conn, shipped, zendesk, twilio,
                                                                         body, matched):
    text(client, body)
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "normal" and "hotline_general" in ticket["tags"]
    summary = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]][0]
    assert f'rule "poison" matched "{matched}" but was vetoed: emergency score' in summary
    assert not any(m["to"] == ON_CALL for m in twilio.sent())
