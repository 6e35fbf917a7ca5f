"""Message templates (SPEC 6): files under `templates/`, one per message and language,
and the operators' overrides of them in Redis.

Rendered by Jinja in an immutable sandbox with StrictUndefined, so a typo in
a variable is an error, not a silently empty reply. A template is named by
channel, name and language: `sms/ack/en` is the file `sms/ack.en.txt`.

An override saved on the operators' console wins over the file. Every process
notices a save within `REFRESH_SECONDS`: it reads one Redis counter at most
that often, and the overrides themselves only when the counter moved.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot import keys, sms
from bot.redisconn import UNAVAILABLE

log = logging.getLogger("hotline.replies")

DEFAULT_LANGUAGE = "en"
REFRESH_SECONDS = 1.0

# What each template may use, with sample values for `check()` and the preview.
SAMPLE = {
    "ticket_id": 1234,
    "team": "Trust & Safety",
    "url": "https://example.zendesk.com/agent/tickets/1234",
    "why": 'rule "injury" matched "hit by a car"',
    "category": "emergency",
    "waited": "12 minutes",
}


class TemplateProblem(ValueError):
    pass


def template_id(rel: str) -> str:
    """`sms/ack.en.txt` → `sms/ack/en`."""
    stem, lang = rel.removesuffix(".txt").rsplit(".", 1)
    return f"{stem}/{lang}"


def file_name(tid: str) -> str:
    """`sms/ack/en` → `sms/ack.en.txt`."""
    stem, lang = tid.rsplit("/", 1)
    return f"{stem}.{lang}.txt"


@dataclass
class Check:
    """What rendering a body with sample data gives: the text, its SMS size, what is wrong."""
    id: str
    text: str = ""
    size: sms.SmsSize = field(default_factory=lambda: sms.measure(""))
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"id": self.id, "text": self.text, "encoding": self.size.encoding,
                "segments": self.size.segments, "characters": self.size.characters,
                "units": self.size.units, "errors": self.errors, "warnings": self.warnings}


class Templates:
    def __init__(self, root: Path, redis=None):
        self.root = Path(root)
        self.redis = redis
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.root)), undefined=StrictUndefined,
            autoescape=False, keep_trailing_newline=False)
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._generation: bytes | None = None
        self._overrides: dict[str, object] = {}  # id -> compiled override

    def attach(self, redis) -> "Templates":
        """Use the overrides saved in `redis` from now on."""
        self.redis = redis
        return self

    # -- files ------------------------------------------------------------------

    def path_for(self, name: str, language: str = DEFAULT_LANGUAGE) -> str:
        """`sms/ack` + `es` → `sms/ack.es.txt`, falling back to English."""
        for lang in (language, DEFAULT_LANGUAGE):
            candidate = f"{name}.{lang}.txt"
            if (self.root / candidate).is_file():
                return candidate
        raise TemplateProblem(f"no template {name} for {language} or {DEFAULT_LANGUAGE}")

    def names(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.txt"))

    def ids(self) -> list[str]:
        """Every template's id (`sms/ack/en`…), from the files."""
        return [template_id(rel) for rel in self.names()]

    def file_body(self, tid: str) -> str:
        """The file's text for `tid`; TemplateProblem if there is no such template."""
        path = self.root / file_name(tid)
        # Only the ids of existing files: no path from a URL reaches the disk.
        if tid not in self.ids() or not path.is_file():
            raise TemplateProblem(f"no template {tid}")
        return path.read_text(encoding="utf-8")

    # -- rendering ----------------------------------------------------------------

    def render(self, name: str, language: str = DEFAULT_LANGUAGE, **context) -> str:
        rel = self.path_for(name, language)
        template = self._current_overrides().get(template_id(rel)) or self.env.get_template(rel)
        return template.render(**context).strip()

    def _current_overrides(self) -> dict:
        if self.redis is None:
            return {}
        now = time.monotonic()
        if now - self._checked_at < REFRESH_SECONDS:
            return self._overrides
        with self._lock:
            if now - self._checked_at < REFRESH_SECONDS:
                return self._overrides
            try:
                generation = self.redis.get(keys.TEMPLATE_GENERATION)
                if generation != self._generation:
                    saved = self.redis.hgetall(keys.TEMPLATE_OVERRIDES)
                    self._overrides = self._compile(saved)
                    self._generation = generation
            except UNAVAILABLE:
                log.warning("templates.overrides-unavailable")  # keep what we had
            self._checked_at = now
        return self._overrides

    def _compile(self, saved: dict[bytes, bytes]) -> dict:
        """Compiled overrides; one that no longer compiles is skipped, so its file answers."""
        compiled = {}
        for key, body in saved.items():
            try:
                compiled[key.decode()] = self.env.from_string(body.decode())
            except TemplateError:
                log.error("templates.override-broken", extra={"template": key.decode()})
        return compiled

    # -- checking -------------------------------------------------------------------

    def validate(self, tid: str, body: str) -> Check:
        """Render `body` as template `tid` with sample data; every problem, not only the first."""
        result = Check(id=tid)
        try:
            parsed = self.env.parse(body)
        except TemplateSyntaxError as exc:
            result.errors.append(f"syntax error on line {exc.lineno}: {exc.message}")
            return result
        unknown = sorted(meta.find_undeclared_variables(parsed) - SAMPLE.keys())
        result.errors.extend(f"unknown variable {name!r}" for name in unknown)
        if not unknown:
            try:
                result.text = self.env.from_string(body).render(**SAMPLE).strip()
            except TemplateError as exc:
                result.errors.append(f"cannot render: {exc}")
        result.size = sms.measure(result.text)
        if not result.text and not result.errors:
            result.errors.append("the text is empty: there would be nothing to send")
        if tid.startswith("sms/"):
            errors, warnings = sms.problems(result.size)
            result.errors.extend(errors)
            result.warnings.extend(warnings)
        return result

    def check_all(self) -> list[Check]:
        """Every file template checked with sample data."""
        return [self.validate(tid, self.file_body(tid)) for tid in self.ids()]

    def check(self) -> None:
        """Raise naming every file template that would not render (the service refuses to start)."""
        broken = [f"templates/{file_name(c.id)}: {'; '.join(c.errors)}"
                  for c in self.check_all() if c.errors]
        if broken:
            raise TemplateProblem("\n".join(broken))
