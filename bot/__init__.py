"""Hotline's domain: events, conversations, jobs and the adapters they use.

Nothing in this package imports Flask; webhooks live in `handlers/`.
"""
