"""Message templates (SPEC 6): files under `templates/`, one per message and language.

Rendered by Jinja in an immutable sandbox with StrictUndefined, so a typo in
a variable is an error, not a silently empty reply.
"""
from __future__ import annotations

from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_LANGUAGE = "en"

# What each template may use, with sample values for `check()`.
SAMPLE = {
    "ticket_id": 1234,
    "team": "Trust & Safety",
    "url": "https://example.zendesk.com/agent/tickets/1234",
    "why": 'rule "injury" matched "hit by a car"',
    "category": "emergency",
}


class TemplateProblem(ValueError):
    pass


class Templates:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.root)), undefined=StrictUndefined,
            autoescape=False, keep_trailing_newline=False)

    def path_for(self, name: str, language: str = DEFAULT_LANGUAGE) -> str:
        """`sms/ack` + `es` → `sms/ack.es.txt`, falling back to English."""
        for lang in (language, DEFAULT_LANGUAGE):
            candidate = f"{name}.{lang}.txt"
            if (self.root / candidate).is_file():
                return candidate
        raise TemplateProblem(f"no template {name} for {language} or {DEFAULT_LANGUAGE}")

    def render(self, name: str, language: str = DEFAULT_LANGUAGE, **context) -> str:
        return self.env.get_template(self.path_for(name, language)).render(**context).strip()

    def names(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.txt"))

    def check(self) -> None:
        """Render every template with sample data; raise naming the first that fails."""
        for rel in self.names():
            try:
                self.env.get_template(rel).render(**SAMPLE)
            except TemplateError as exc:
                raise TemplateProblem(f"templates/{rel}: {exc}") from None
