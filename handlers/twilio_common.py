"""Twilio's `X-Twilio-Signature`, checked with twilio's own RequestValidator.

The URL is rebuilt from PUBLIC_BASE_URL, the path and the query string exactly
as received: Werkzeug's `request.url` decodes `%27` or `%C3%A9` and breaks the
signature, and behind a proxy the scheme and host it sees are not the ones
Twilio signed.
"""
from __future__ import annotations

import functools
import logging

from flask import Response, request
from twilio.request_validator import RequestValidator

from handlers.common import state

log = logging.getLogger("hotline.twilio")


def signed_url() -> str:
    url = state().config.public_base_url + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


def verified(view):
    """Refuse (403, nothing written) a request Twilio did not sign."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = state().config.twilio_auth_token
        signature = request.headers.get("X-Twilio-Signature", "")
        if not token or not signature or not RequestValidator(token).validate(
                signed_url(), request.form, signature):
            log.warning("twilio.webhook.invalid-signature", extra={"path": request.path})
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper


def twiml(response) -> Response:
    return Response(str(response), mimetype="text/xml")
