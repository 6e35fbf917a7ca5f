"""Jobs for the worker-model benchmark, in a module that imports nothing heavy, so a
forking worker's work-horse pays only for what a real Hotline job would."""
from __future__ import annotations


def noop() -> None:
    """An empty job: what RQ itself costs per job."""


def touch() -> str:
    """What every real job uses: the runtime (settings, templates, clients) and the
    language detector."""
    from bot import runtime
    from bot.language import detect

    rt = runtime.get()
    return detect("hello there, my booking is late", rt.settings.languages) or ""
