"""Voice (SPEC 8): the menu, emergency forwarding, voicemail and missed calls.

Every answer is TwiML built here from `templates/voice/` and the settings,
without waiting on Zendesk or the Twilio REST API. The only state is a small
per-call hash in Redis (caller, menu choice, whether a voicemail was left), so
the call-status callback can tell a voicemail from a missed call. Tickets
come from the events queued here, through the same conversation pipeline as
texts: a caller who texted before gets the voicemail on the same ticket.

Routes (all verified like every Twilio webhook):
- `POST /twilio/voice` — the call arrives: greeting and menu.
- `POST /twilio/voice/menu` — the digit pressed (`attempt` counts retries).
- `POST /twilio/voice/screen`, `…/screen/accept` — the on-call person presses 1 to take it.
- `POST /twilio/voice/dial` — how the forward to on-call ended.
- `POST /twilio/voice/recorded` — the voicemail ended: queued for a ticket.
- `POST /twilio/voice/recording` — the recording's status: acknowledged.
- `POST /twilio/voice/transcription` — the transcription: queued as a further comment.
- `POST /twilio/voice/status` — the call ended: a missed or answered call is queued.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, request
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from bot import calls
from bot.events import InboundMessage
from bot.phones import to_e164
from bot.redact import redact
from bot.redisconn import UNAVAILABLE
from handlers.common import accept, accept_job, bad_request, state
from handlers.twilio_common import twiml, verified

log = logging.getLogger("hotline.voice")
bp = Blueprint("twilio_voice", __name__)

ENDED = {"completed", "busy", "no-answer", "failed", "canceled"}
VOICE_LANG = {"en": "en-US", "es": "es-MX"}
MAX_MENU_TRIES = 2


def _url(path: str, **query) -> str:
    from urllib.parse import urlencode

    base = state().config.public_base_url + path
    return base + ("?" + urlencode(query) if query else "")


def _say(response_or_verb, name: str) -> None:
    st = state()
    lang = st.settings.voice_language
    text = st.templates.render(f"voice/{name}", lang)
    response_or_verb.say(text, language=VOICE_LANG.get(lang, "en-US"))


def _call_state(sid: str) -> dict:
    try:
        return calls.state(state().redis, sid)
    except UNAVAILABLE:
        return {}


def _remember(sid: str, **fields) -> None:
    """Note something about the call; a Redis outage must not break the call itself."""
    try:
        calls.remember(state().redis, sid, **fields)
    except UNAVAILABLE:
        log.warning("voice.state-unavailable")


def call_webhook(view):
    """A Twilio-signed call callback that names its call: the view gets the CallSid."""
    import functools

    @functools.wraps(view)
    @verified
    def wrapper():
        sid = request.form.get("CallSid", "").strip()
        if not sid:
            return bad_request("missing CallSid")
        return view(sid)

    return wrapper


def _caller(sid: str) -> str:
    """The caller's number (E.164), else what the call started with, else a withheld-number id."""
    return to_e164(request.form.get("From", "")) or _call_state(sid).get("caller") or f"anon:{sid}"


def _location(form) -> dict:
    found = {k: form.get(f"From{k.title()}", "").strip() for k in ("city", "state", "zip", "country")}
    return {k: v for k, v in found.items() if v}


def menu(response: VoiceResponse, attempt: int) -> VoiceResponse:
    """Greeting (first time) and the menu, in a <Gather> that posts the digit back."""
    st = state()
    after_hours = not st.settings.in_business_hours(datetime.now(timezone.utc))
    gather = Gather(num_digits=1, timeout=6, method="POST",
                    action=_url("/twilio/voice/menu", attempt=attempt))
    if attempt == 1:
        _say(gather, "greeting")
    _say(gather, "menu_after_hours" if after_hours else "menu")
    response.append(gather)
    # No key pressed: Twilio follows this to the menu handler with no digits.
    response.redirect(_url("/twilio/voice/menu", attempt=attempt), method="POST")
    return response


def voicemail(response: VoiceResponse, choice: str) -> VoiceResponse:
    st = state()
    _say(response, "voicemail_emergency" if choice == "emergency" else "voicemail")
    response.record(
        max_length=st.settings.voice_max_seconds, play_beep=True, finish_on_key="#",
        trim="trim-silence", method="POST",
        action=_url("/twilio/voice/recorded", choice=choice),
        recording_status_callback=_url("/twilio/voice/recording"),
        recording_status_callback_event="completed absent failed",
        transcribe=True, transcribe_callback=_url("/twilio/voice/transcription"))
    # Silence until the end of <Record>: Twilio posts the action URL anyway.
    return response


@bp.post("/twilio/voice")
@call_webhook
def incoming(sid):
    caller = to_e164(request.form.get("From", ""))
    _remember(sid, caller=caller or "", location=json.dumps(_location(request.form)))
    return twiml(menu(VoiceResponse(), attempt=1))


@bp.post("/twilio/voice/menu")
@call_webhook
def menu_choice(sid):
    st = state()
    digit = request.form.get("Digits", "").strip()[:1]
    attempt = int(request.args.get("attempt", "1") or 1)
    after_hours = not st.settings.in_business_hours(datetime.now(timezone.utc))
    response = VoiceResponse()
    if digit == "1":
        _remember(sid, choice="emergency")
        if st.settings.on_call:
            _say(response, "connecting")
            dial = Dial(timeout=st.settings.voice_dial_timeout, method="POST",
                        action=_url("/twilio/voice/dial"))
            for number in st.settings.on_call:
                # A whisper: the on-call person must press 1, so their own voicemail
                # picking up is not taken for an answer.
                dial.number(number, url=_url("/twilio/voice/screen"), method="POST")
            response.append(dial)
            return twiml(response)
        return twiml(voicemail(response, "emergency"))
    if digit in ("2", "3") and not after_hours:
        choice = "claim" if digit == "2" else "other"
        _remember(sid, choice=choice)
        return twiml(voicemail(response, choice))
    if after_hours and not digit:
        return twiml(voicemail(response, "other"))
    if attempt < MAX_MENU_TRIES:
        if digit:
            _say(response, "invalid")
        return twiml(menu(response, attempt + 1))
    return twiml(voicemail(response, "other"))


@bp.post("/twilio/voice/screen")
@call_webhook
def screen(sid):
    """Played to the on-call person when they pick up; the caller keeps hearing ringing."""
    parent = request.form.get("ParentCallSid", "").strip() or sid
    response = VoiceResponse()
    gather = Gather(num_digits=1, timeout=8, method="POST",
                    action=_url("/twilio/voice/screen/accept", parent=parent))
    _say(gather, "screen")
    response.append(gather)
    response.hangup()  # no key: a voicemail or a pocket, not a person
    return twiml(response)


@bp.post("/twilio/voice/screen/accept")
@call_webhook
def screen_accept(sid):
    response = VoiceResponse()
    if request.form.get("Digits", "").strip()[:1] == "1":
        _remember(request.args.get("parent", sid), answered="1")
        return twiml(response)  # an empty answer bridges the two calls
    response.hangup()
    return twiml(response)


@bp.post("/twilio/voice/dial")
@call_webhook
def dial_result(sid):
    """The forward ended: after a conversation, hang up; otherwise, voicemail."""
    if _call_state(sid).get("answered"):
        response = VoiceResponse()
        response.hangup()
        return twiml(response)
    return twiml(voicemail(VoiceResponse(), "emergency"))


@bp.post("/twilio/voice/recorded")
@call_webhook
def recorded(sid):
    """<Record>'s action: the caller finished. A real voicemail is queued for a ticket."""
    form = request.form
    choice = request.args.get("choice", "other")
    try:
        duration = int(form.get("RecordingDuration", "0") or 0)
    except ValueError:
        duration = 0
    url, rec_sid = form.get("RecordingUrl", "").strip(), form.get("RecordingSid", "").strip()
    caller = _caller(sid)
    if url and rec_sid and duration >= state().settings.voice_min_seconds:
        _remember(sid, recorded="1")
        label = {"emergency": "emergency line", "claim": "claims"}.get(choice, "general line")
        accept(InboundMessage(
            provider_id=rec_sid, sender=caller, channel="voice", kind_of="voicemail",
            body=f"Voicemail ({label}, {duration} s). Recording: {url}.mp3 — the transcription "
                 f"follows as a further comment when Twilio has it.",
            triage_hint="emergency" if choice == "emergency" else "",
            recording={"sid": rec_sid, "url": url, "duration": duration},
            location=_location(form)))
    else:
        _remember(sid, short="1")  # the status callback makes it a missed call
    response = VoiceResponse()
    _say(response, "goodbye")
    response.hangup()
    return twiml(response)


@bp.post("/twilio/voice/recording")
@call_webhook
def recording_status(sid):
    """The recording's own status. The voicemail was queued by <Record>'s action; an
    absent or failed recording is left to the call-status callback (missed call)."""
    return Response(status=204)


@bp.post("/twilio/voice/transcription")
@call_webhook
def transcription(sid):
    form = request.form
    text = form.get("TranscriptionText", "").strip()
    caller = _caller(sid)
    tsid = form.get("TranscriptionSid", "").strip()
    if form.get("TranscriptionStatus") == "completed" and text and tsid:
        accept(InboundMessage(provider_id=tsid, sender=caller, channel="voice",
                              kind_of="transcription",
                              body=redact(f"Voicemail transcription: {text}"),
                              location=_location(form)))
    return Response(status=204)


@bp.post("/twilio/voice/status")
@call_webhook
def call_status(sid):
    """The call ended: noted, and a job decides shortly whether it was a missed call."""
    form = request.form
    status = form.get("CallStatus", "").strip()
    if status not in ENDED:
        return Response(status=204)
    caller = to_e164(form.get("From", ""))
    fields = {"ended": status, "duration": form.get("CallDuration", "0") or "0"}
    if caller:
        fields["caller"] = caller
    _remember(sid, **fields)
    accept_job(f"twilio:callstatus:{sid}:{status}", "bot.jobs.call_ended", sid)
    return Response(status=204)
