"""`X-Twilio-Signature`: Twilio's published vectors, encoded queries, a proxied base URL."""
import dataclasses
import json

import pytest
from flask import Flask

from handlers.common import WebState
from handlers.twilio_common import verified
from tests.conftest import FIXTURES, post_twilio, sms, stored

VECTORS = json.loads((FIXTURES / "twilio" / "request_validator_vectors.json").read_text())


def vector_app(base_url: str, conn) -> Flask:
    """An app with one `@verified` route at the vectors' path, seen through `base_url`."""
    from bot.config import Config

    app = Flask(__name__)
    app.extensions["hotline"] = WebState(
        config=Config(public_base_url=base_url, twilio_auth_token=VECTORS["auth_token"]), redis=conn)

    @app.post("/myapp.php")
    @verified
    def target():
        return "ok"

    return app


@pytest.mark.parametrize("base_url, signature", [
    ("https://mycompany.com", VECTORS["expected_signature"]),
    ("https://mycompany.com:443", VECTORS["expected_signature"]),
    ("https://mycompany.com", VECTORS["expected_signature_url_with_port_443"]),
])
def test_published_vectors_verify(conn, base_url, signature):
    client = vector_app(base_url, conn).test_client()
    resp = client.post("/myapp.php?foo=1&bar=2", data=VECTORS["params"],
                       headers={"X-Twilio-Signature": signature})
    assert resp.status_code == 200


def test_published_vector_with_repeated_keys_verifies(conn):
    client = vector_app("https://mycompany.com", conn).test_client()
    body = "&".join(f"{k}={v}" for k, v in VECTORS["duplicate_key_params"])
    resp = client.post("/myapp.php?foo=1&bar=2", data=body,
                       content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": VECTORS["duplicate_key_expected_signature"]})
    assert resp.status_code == 200


def test_published_vector_with_one_changed_parameter_fails(conn):
    client = vector_app("https://mycompany.com", conn).test_client()
    params = dict(VECTORS["params"], Digits="1235")
    resp = client.post("/myapp.php?foo=1&bar=2", data=params,
                       headers={"X-Twilio-Signature": VECTORS["expected_signature"]})
    assert resp.status_code == 403


def test_encoded_query_string_is_signed_as_received(client, conn):
    # Werkzeug would decode these to ' and é in request.url, breaking the signature.
    query = "name=O%27Brien&city=Montr%C3%A9al"
    resp = post_twilio(client, "/twilio/sms", sms("+15551230001", "hola"), query=query)
    assert resp.status_code == 200
    assert conn.llen("rq:queue:hotline-replies") == 1  # a new conversation's job


def test_proxied_public_base_url_is_what_counts(config, conn):
    """Behind a proxy the app sees http://localhost; Twilio signed the public https URL."""
    from web import create_app

    proxied = dataclasses.replace(config, public_base_url="https://support.example.org/hotline")
    client = create_app(proxied, maintenance=False).test_client()
    params = sms("+15551230001", "hi")
    from tests.conftest import sign

    good = sign("https://support.example.org/hotline/twilio/sms", params)
    as_seen_locally = sign("http://localhost/twilio/sms", params)

    assert client.post("/twilio/sms", data=params,
                       headers={"X-Twilio-Signature": as_seen_locally}).status_code == 403
    assert client.post("/twilio/sms", data=params,
                       headers={"X-Twilio-Signature": good}).status_code == 200


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl"])
def test_missing_or_forged_signature_is_403_and_nothing_written(client, conn, config, signature):
    params = sms("+15551230001", "hi")
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    resp = client.post("/twilio/sms", data=params, headers=headers)
    assert resp.status_code == 403
    assert not stored(conn)
    assert not config.spool_dir.exists() or not list(config.spool_dir.iterdir())


def test_signature_with_another_token_is_403(client, conn):
    params = sms("+15551230001", "hi")
    from tests.conftest import BASE_URL, sign

    resp = post_twilio(client, "/twilio/sms", params,
                       signature=sign(BASE_URL + "/twilio/sms", params, token="someone-else"))
    assert resp.status_code == 403 and not stored(conn)


def test_no_auth_token_configured_refuses_everything(config, conn):
    """Fail closed: without TWILIO_AUTH_TOKEN nothing is accepted, even unsigned."""
    from web import create_app

    client = create_app(dataclasses.replace(config, twilio_auth_token=""),
                        maintenance=False).test_client()
    params = sms("+15551230001", "hi")
    from tests.conftest import BASE_URL, sign

    resp = client.post("/twilio/sms", data=params,
                       headers={"X-Twilio-Signature": sign(BASE_URL + "/twilio/sms", params, token="")})
    assert resp.status_code == 403 and not stored(conn)
