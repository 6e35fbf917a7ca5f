"""The worker Hotline runs: `rq worker --worker-class bot.worker.HotlineWorker` (see Procfile).

RQ's `SimpleWorker` — jobs run in the worker process itself, no fork per
job — with everything expensive built once, before the first job: settings,
templates, the Zendesk and Twilio clients (and their kept-alive HTTPS
connections), the language detector. Chosen by measurement (bench/README.md):
the forking `Worker` rebuilt all of that in every job. Job timeouts are still
enforced (RQ's SIGALRM death penalty in the main thread); a job that kills
the process is recovered by the conversation lock's short TTL and the web
tier's sweep.
"""
from __future__ import annotations

from rq import SimpleWorker

from bot import language, runtime


class HotlineWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rt = runtime.get()
        language.warm(rt.settings.languages)
