"""The operators' template overrides and their versions, in Redis (SPEC 6).

Version 1 of every template is its file. Each save — an edit or a restore —
adds the next version with who and when, and puts its body in force; a body
equal to the file's text just lets the file rule again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from bot import keys
from bot.replies import Check, TemplateProblem, Templates, file_name

FILE_AUTHOR = "file"


class Refused(ValueError):
    """A body that does not render; nothing was saved."""

    def __init__(self, check: Check):
        super().__init__("; ".join(check.errors))
        self.check = check


@dataclass(frozen=True)
class Version:
    version: int
    author: str
    at: str
    body: str

    def as_json(self) -> dict:
        return {"version": self.version, "author": self.author, "at": self.at, "body": self.body}


class TemplateStore:
    def __init__(self, conn: redis.Redis, templates: Templates):
        self.redis = conn
        self.templates = templates

    def _file_version(self, tid: str) -> Version:
        body = self.templates.file_body(tid)  # TemplateProblem for an unknown id
        mtime = (self.templates.root / file_name(tid)).stat().st_mtime
        return Version(1, FILE_AUTHOR, _iso(datetime.fromtimestamp(mtime, timezone.utc)), body)

    def versions(self, tid: str) -> list[Version]:
        """Newest first; the file's text is the last (version 1)."""
        saved = [Version(**json.loads(raw)) for raw in
                 self.redis.lrange(keys.template_history(tid), 0, -1)]
        return saved + [self._file_version(tid)]

    def current(self, tid: str) -> dict:
        """`{"id", "body", "source", "version"}` of the template in force."""
        file_body = self.templates.file_body(tid)
        override = self.redis.hget(keys.TEMPLATE_OVERRIDES, tid)
        latest = self.redis.lindex(keys.template_history(tid), 0)
        version = json.loads(latest)["version"] if latest else 1
        return {"id": tid, "body": override.decode() if override is not None else file_body,
                "source": "override" if override is not None else "file", "version": version}

    def listing(self) -> list[dict]:
        """Every template: id, channel, name, language, source, version, last change."""
        overrides = {k.decode() for k in self.redis.hkeys(keys.TEMPLATE_OVERRIDES)}
        out = []
        for tid in self.templates.ids():
            channel, name, lang = tid.split("/")
            latest = self.redis.lindex(keys.template_history(tid), 0)
            last = json.loads(latest) if latest else None
            out.append({"id": tid, "channel": channel, "name": name, "language": lang,
                        "source": "override" if tid in overrides else "file",
                        "version": last["version"] if last else 1,
                        "author": last["author"] if last else FILE_AUTHOR,
                        "at": last["at"] if last else None})
        return out

    def save(self, tid: str, body: str, author: str) -> int:
        """Validate and save `body` as the next version of `tid`; Refused if it is broken."""
        file_body = self.templates.file_body(tid)  # TemplateProblem for an unknown id
        check = self.templates.validate(tid, body)
        if check.errors:
            raise Refused(check)
        history = keys.template_history(tid)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(history)
                    latest = pipe.lindex(history, 0)
                    version = (json.loads(latest)["version"] if latest else 1) + 1
                    entry = Version(version, author, _iso(datetime.now(timezone.utc)), body)
                    pipe.multi()
                    pipe.lpush(history, json.dumps(entry.as_json()))
                    if body.strip() == file_body.strip():
                        pipe.hdel(keys.TEMPLATE_OVERRIDES, tid)
                    else:
                        pipe.hset(keys.TEMPLATE_OVERRIDES, tid, body)
                    pipe.incr(keys.TEMPLATE_GENERATION)
                    pipe.execute()
                    return version
                except redis.WatchError:
                    continue  # another operator saved at the same moment; number after theirs

    def restore(self, tid: str, version: int, author: str) -> int:
        """Save version `version`'s body as a new version; TemplateProblem if there is none."""
        for v in self.versions(tid):
            if v.version == version:
                return self.save(tid, v.body, author)
        raise TemplateProblem(f"{tid} has no version {version}")


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
