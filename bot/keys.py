"""Every Redis key Hotline writes, in one place."""

PREFIX = "hotline:"
SEEN_TTL = 7 * 24 * 3600  # idempotency claims live days, not minutes (SPEC 3.3)


def seen(dedupe_key: str) -> str:
    return f"{PREFIX}seen:{dedupe_key}"


CONV_IDS = PREFIX + "convids"          # hash: conversation key -> conversation id
PENDING_INDEX = PREFIX + "pending"     # zset: conversation id -> oldest pending ms


def conversation(conv_id: str) -> str:
    """Hash: the conversation map (key, phone, user id, ticket id, ticket stamp)."""
    return f"{PREFIX}conv:{conv_id}"


def pending(conv_id: str) -> str:
    """Zset: events waiting to reach Zendesk, scored by the time they were received."""
    return f"{PREFIX}pending:{conv_id}"


def queued(conv_id: str) -> str:
    """String: the id of the one job queued (or scheduled) for the conversation."""
    return f"{PREFIX}queued:{conv_id}"


def lock(conv_id: str) -> str:
    return f"{PREFIX}lock:{conv_id}"


def autoreply(conv_key: str) -> str:
    return f"{PREFIX}autoreply:{conv_key}"


def intent(name: str) -> str:
    return f"{PREFIX}intent:{name}"



DEAD_INDEX = PREFIX + "dead"           # set: conversation ids with events set aside


def dead(conv_id: str) -> str:
    """Zset: events the desk refused for good, kept for `flask hotline failed requeue`."""
    return f"{PREFIX}dead:{conv_id}"


OPTED_OUT = PREFIX + "optout"          # hash: phone -> when it opted out


def outbox(conv_id: str) -> str:
    """Hash: send intent (comment:123:1, template:ack:…) -> sid | sending | unknown | failed:code."""
    return f"{PREFIX}outbox:{conv_id}"


def message(sid: str) -> str:
    """Hash: an outbound message's conversation, ticket and furthest status."""
    return f"{PREFIX}msg:{sid}"


def ticket(ticket_id) -> str:
    """Hash: a ticket Hotline writes to: its conversation and when it was linked."""
    return f"{PREFIX}ticket:{ticket_id}"


def ticket_lock(ticket_id) -> str:
    return f"{PREFIX}ticket-lock:{ticket_id}"


def call(call_sid: str) -> str:
    """Hash: a call in progress (caller, menu choice, voicemail left, answered)."""
    return f"{PREFIX}call:{call_sid}"


def blob(key: str) -> str:
    """Bytes of an email attachment, between the webhook and the worker that uploads it."""
    return f"{PREFIX}blob:{key}"


MESSAGE_IDS = PREFIX + "message-ids"   # hash: email Message-ID -> ticket id
BLOB_TTL = 7 * 24 * 3600

# Reconciliation with Twilio (SPEC 10)
RECONCILE_MARK = PREFIX + "reconcile:mark"      # epoch seconds: listed up to here
RECONCILE_LOCK = PREFIX + "reconcile:lock"      # one run at a time, whoever runs it


def reconcile_slot(slot: int) -> str:
    """Once-key: the scheduled run for slot `slot` (epoch ms) is in RQ's scheduler."""
    return f"{PREFIX}reconcile:slot:{slot}"


def reconcile_ran(slot: int) -> str:
    """Once-key: the run for time slot `slot` has started."""
    return f"{PREFIX}reconcile:ran:{slot}"


# Operators' template overrides (SPEC 6), by template id (`sms/ack/en`).
TEMPLATE_OVERRIDES = PREFIX + "templates:overrides"    # hash: id -> body in force
TEMPLATE_GENERATION = PREFIX + "templates:generation"  # counter: moves on every save


def template_history(tid: str) -> str:
    """List: the saved versions of a template, newest first (JSON each)."""
    return f"{PREFIX}templates:history:{tid}"


OPERATORS = PREFIX + "operators"       # hash: operators' account name -> password hash


def followups(ticket_id) -> str:
    """Hash: the ticket's scheduled follow-ups, step -> {job, reason, due, queue} (`bot.jobs`)."""
    return f"{PREFIX}followups:{ticket_id}"


def survey(conv_id: str) -> str:
    """The satisfaction survey awaiting this customer's answer: {ticket, at}; lives the window."""
    return f"{PREFIX}survey:{conv_id}"
