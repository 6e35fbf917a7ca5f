"""Settings (HOTLINE_SETTINGS) and templates: checked at start, mistakes named."""
import dataclasses
from datetime import datetime, timezone

import pytest

from bot.config import ROOT
from bot.replies import TemplateProblem, Templates
from bot.settings import SettingsError, load_settings, parse_settings


def test_shipped_settings_load():
    s = load_settings(ROOT / "config" / "settings.yaml")
    assert s.timezone.key == "America/Los_Angeles"
    assert s.reopen_window_hours == 72 and s.autoreply_window_hours == 4
    assert "image/jpeg" in s.media_allowed_types
    # Tuesday 10:00 in Los Angeles is open; 23:00 is not.
    assert s.in_business_hours(datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc))
    assert not s.in_business_hours(datetime(2026, 11, 25, 7, 0, tzinfo=timezone.utc))


@pytest.mark.parametrize("data, fault", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"business_hours": {"funday": ["08:00", "17:00"]}}, "business_hours.funday"),
    ({"business_hours": {"mon": ["8am", "17:00"]}}, "business_hours.mon"),
    ({"business_hours": {"mon": ["18:00", "08:00"]}}, "business_hours.mon"),
    ({"conversations": {"reopen_window_hours": "soon"}}, "conversations.reopen_window_hours"),
    ({"conversations": {"autoreply_window_hours": -1}}, "conversations.autoreply_window_hours"),
    ({"media": {"allowed_types": "image/jpeg"}}, "media.allowed_types"),
])
def test_bad_settings_are_refused_naming_the_key(data, fault):
    with pytest.raises(SettingsError) as err:
        parse_settings(data, "settings.yaml")
    assert fault in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("timezone: UTC\nbusiness_hours:\n  mon: [08:00, 17:00\n")
    with pytest.raises(SettingsError, match=r"line \d+"):
        load_settings(path)


def test_service_refuses_to_start_with_bad_settings(config, tmp_path):
    from web import create_app

    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: Nowhere/Never\n")
    with pytest.raises(SettingsError, match="timezone"):
        create_app(dataclasses.replace(config, settings_path=bad), maintenance=False)


def test_service_refuses_to_start_with_a_broken_template(config, tmp_path):
    from web import create_app

    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "ack.en.txt").write_text("Case #{{ ticket_idd }}")
    with pytest.raises(TemplateProblem, match="sms/ack.en.txt"):
        create_app(dataclasses.replace(config, templates_dir=tmp_path), maintenance=False)


def test_templates_render_in_the_requested_language_with_english_fallback(tmp_path):
    t = Templates(ROOT / "templates")
    assert "caso urgente #77" in t.render("sms/emergency", "es", ticket_id=77)
    assert "urgent case #77" in t.render("sms/emergency", "fr", ticket_id=77)


def test_templates_are_sandboxed(tmp_path):
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "evil.en.txt").write_text("{{ ticket_id.__class__.__mro__ }}")
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        Templates(tmp_path).render("sms/evil", ticket_id=1)
