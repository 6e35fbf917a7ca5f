"""Webhooks, one module per source, registered in this one list (SPEC 3).

A handler verifies the sender, normalises the payload into a `bot.events`
event, and hands it to `bot.intake`. It never calls Zendesk or Twilio.
"""
from handlers import health, metrics, sendgrid, twilio_sms, twilio_voice, zendesk

BLUEPRINTS = [
    health.bp,
    metrics.bp,
    twilio_sms.bp,
    twilio_voice.bp,
    zendesk.bp,
    sendgrid.bp,
]
