"""`flask hotline …`: operators' commands (SPEC 11)."""
from __future__ import annotations

import sys
from email.utils import parseaddr

import click
from flask import current_app
from flask.cli import AppGroup
from rq import Queue
from rq.registry import FailedJobRegistry

from bot import intake, jobs, keys, redisconn, runtime
from bot.replies import TemplateProblem, Templates, file_name
from bot.settings import SettingsError, load_settings
from web import checks
from web import simulate as simulation


def _config():
    return current_app.extensions["hotline"].config


def _redis():
    return redisconn.connect(_config().redis_url)


@click.group(cls=AppGroup)
def hotline():
    """Hotline operations."""


@hotline.group()
def simulate():
    """Send a correctly signed webhook to a running Hotline."""


def _twilio_token(cfg) -> str:
    if not cfg.twilio_auth_token:
        raise click.ClickException("TWILIO_AUTH_TOKEN is not set (or run in local mode)")
    return cfg.twilio_auth_token


def _sent(post):
    """Run a simulated post; nothing listening is one clear sentence, not a traceback."""
    try:
        return post()
    except simulation.NotListening as exc:
        raise click.ClickException(str(exc)) from None


TARGET = click.option("--target", default=None,
                      help="Where to post, when it is not PUBLIC_BASE_URL (e.g. behind a tunnel).")


@simulate.command("sms")
@click.option("--from", "sender", required=True, help="The customer's number, E.164.")
@click.option("--to", "to", default=None, help="Hotline's number (default TWILIO_FROM_NUMBER).")
@click.option("--media", multiple=True, help="A media URL, as an MMS would carry.")
@TARGET
@click.argument("text")
def simulate_sms(sender, to, media, target, text):
    """Text TEXT to Hotline as if from --from."""
    cfg = _config()
    params = simulation.twilio_sms_params(sender, to or cfg.twilio_from_number or "+15005550006",
                                          text, cfg.twilio_account_sid or "AC" + "0" * 32,
                                          tuple(media))
    resp = _sent(lambda: simulation.post_signed(cfg.public_base_url, "/twilio/sms", params,
                                                _twilio_token(cfg), target))
    click.echo(f"{resp.status_code} {resp.text.strip()}")
    sys.exit(0 if resp.ok else 1)


@simulate.command("call")
@click.option("--from", "sender", required=True, help="The caller's number, E.164.")
@click.option("--to", "to", default=None, help="Hotline's number (default TWILIO_FROM_NUMBER).")
@click.option("--press", default="3", show_default=True,
              help="The menu key the caller presses (1 emergency, 2 claim, 3 other).")
@click.option("--seconds", default=12, show_default=True, help="Length of the voicemail.")
@TARGET
@click.argument("words", default="Hi, this is a simulated voicemail. Please call me back.")
def simulate_call(sender, to, press, seconds, target, words):
    """Call Hotline as if from --from: ring, press a key, leave WORDS as a voicemail.

    Follows the TwiML Hotline answers with (its action URLs), then sends the
    recording, its transcription and the call's end as Twilio would.
    """
    cfg = _config()
    call = simulation.Call(cfg.public_base_url, _twilio_token(cfg), sender,
                           to or cfg.twilio_from_number or "+15005550006",
                           cfg.twilio_account_sid or "AC" + "0" * 32, press, words, seconds, target)
    try:
        steps = _sent(call.run)
    except simulation.CallFailed as exc:
        steps = exc.steps
    for step in steps:
        click.echo(step.line())
    sys.exit(0 if all(200 <= s.status < 300 for s in steps) else 1)


@simulate.command("email")
@click.option("--from", "sender", required=True, help="The customer's address.")
@click.option("--name", default="Simulated Customer", show_default=True, help="Their display name.")
@click.option("--to", "to", default="support@hotline.example.com", show_default=True,
              help="The address the email was sent to.")
@click.option("--subject", default="Question about my booking", show_default=True)
@TARGET
@click.argument("text")
def simulate_email(sender, name, to, subject, target, text):
    """Email TEXT to Hotline as SendGrid's Inbound Parse would post it."""
    cfg = _config()
    if not cfg.sendgrid_inbound_user or not cfg.sendgrid_inbound_password:
        raise click.ClickException("SENDGRID_INBOUND_USER and SENDGRID_INBOUND_PASSWORD are not set "
                                   "(or run in local mode)")
    auth = (cfg.sendgrid_inbound_user, cfg.sendgrid_inbound_password)
    display, address = parseaddr(sender)  # --from "Dana <dana@example.com>" works too
    if "@" not in address:
        raise click.BadParameter(f"{sender!r} is not an email address", param_hint="--from")
    fields = simulation.email_fields(address, display or name, to, subject, text)
    resp = _sent(lambda: simulation.post_email(cfg.public_base_url, fields, auth, target))
    click.echo(f"{resp.status_code} {resp.text.strip()}")
    sys.exit(0 if resp.ok else 1)


@hotline.command("check")
def check():
    """Say which mode, Redis, desk and phone Hotline uses, and prove each credential."""
    cfg = _config()
    lines = [checks.mode(cfg), checks.redis_line(cfg)]
    try:
        load_settings(cfg.settings_path)
        lines.append(checks.Line(True, f"settings {cfg.settings_path}"))
    except SettingsError as exc:
        lines.append(checks.Line(False, f"settings {exc}"))
    try:
        Templates(cfg.templates_dir).check()
        lines.append(checks.Line(True, f"templates {cfg.templates_dir}"))
    except TemplateProblem as exc:
        lines.append(checks.Line(False, f"templates {exc}"))
    desk = runtime.make_desk(cfg) if cfg.has_zendesk else None
    lines += checks.desk_lines(cfg, desk)
    phone = runtime.make_phone(cfg) if cfg.has_twilio else None
    lines += checks.phone_lines(cfg, phone.client if phone else None)
    if not cfg.local_mode and not cfg.public_base_url.startswith("https://"):
        lines.append(checks.Line(False, "url      PUBLIC_BASE_URL should be the https:// URL "
                                        "Twilio and Zendesk call"))
    lines.append(checks.console_line(cfg))
    for line in lines:
        click.echo(str(line))
    problems = sum(not line.ok for line in lines)
    click.echo("all good" if not problems else f"{problems} problem(s)")
    sys.exit(1 if problems else 0)


@hotline.group()
def templates():
    """Message templates."""


@templates.command("check")
def templates_check():
    """Render every template with sample data; each SMS template's encoding and segments.

    Every problem of every template is listed; over two segments is a warning,
    an error (unknown variable, syntax, over 1600 characters) fails the command.
    """
    results = Templates(_config().templates_dir).check_all()
    for c in results:
        size = (f"  {c.size.encoding}, {c.size.characters} characters, "
                f"{c.size.segments} segment{'s' if c.size.segments != 1 else ''}"
                if c.id.startswith("sms/") and not c.errors else "")
        click.echo(f"{'error' if c.errors else 'warn' if c.warnings else 'ok':5} "
                   f"templates/{file_name(c.id)}{size}")
        for problem in c.errors:
            click.echo(f"      error: {problem}")
        for problem in c.warnings:
            click.echo(f"      warning: {problem}")
    broken = sum(1 for c in results if c.errors)
    warned = sum(1 for c in results if c.warnings and not c.errors)
    click.echo(f"{len(results)} templates: {broken} with errors, {warned} with warnings")
    sys.exit(1 if broken else 0)


@hotline.group()
def users():
    """Operators' accounts for the console (/admin)."""


@users.command("add")
@click.argument("name")
def users_add(name):
    """Create NAME, or set its password; the password is read from standard input."""
    from web.admin import accounts

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        accounts.add(_redis(), name, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"account {name} saved (with accounts in Redis, ADMIN_PASSWORD no longer signs in)")


@users.command("list")
def users_list():
    """Every operator's account."""
    from web.admin import accounts

    found = accounts.names(_redis())
    click.echo("\n".join(found) if found else "no accounts: admin signs in with ADMIN_PASSWORD, if set")


@users.command("remove")
@click.argument("name")
def users_remove(name):
    """Delete NAME's account; a browser signed in as NAME is signed out at its next request."""
    from web.admin import accounts

    conn = _redis()
    if not accounts.remove(conn, name):
        raise click.ClickException(f"no account {name}")
    left = accounts.names(conn)
    click.echo(f"account {name} removed" + ("" if left else
               "; no account is left, so admin signs in with ADMIN_PASSWORD again, if it is set"))


@hotline.group()
def spool():
    """The local spool of events accepted while Redis was away."""


@spool.command("drain")
def spool_drain():
    """Forward spooled events to Redis now."""
    cfg = _config()
    sent = intake.drain_spool(_redis(), cfg.queue_name, cfg.spool_dir, cfg.urgent_queue_name)
    click.echo(f"forwarded {sent}")


@hotline.group()
def failed():
    """Failed jobs and events set aside."""


@failed.command("list")
def failed_list():
    """Show failed jobs (every queue a worker listens on) and conversations with events set aside."""
    conn, cfg = _redis(), _config()
    names = cfg.queues  # urgent jobs and follow-ups fail on their own queue
    failed_jobs = 0
    for name in names:
        registry = FailedJobRegistry(name, connection=conn)
        failed_jobs += registry.count
        for job in registry.get_job_ids():
            job_obj = Queue(name, connection=conn).fetch_job(job)
            click.echo(f"job {job} {job_obj.description if job_obj else ''} {jobs.failure_reason(job_obj)}")
    convs = sorted(m.decode() for m in conn.smembers(keys.DEAD_INDEX))
    for conv in convs:
        click.echo(f"conversation {conv}: {conn.zcard(keys.dead(conv))} event(s) set aside")
    if not failed_jobs and not convs:
        click.echo(f"nothing failed: no failed jobs in queues {', '.join(names[:-1])} and {names[-1]} and no events "
                   f"set aside")


@failed.command("requeue")
def failed_requeue():
    """Requeue failed jobs and put set-aside events back in their conversations."""
    conn, cfg = _redis(), _config()
    requeued = []
    for name in cfg.queues:
        registry = FailedJobRegistry(name, connection=conn)
        for job_id in registry.get_job_ids():
            registry.requeue(job_id)
            requeued.append(job_id)
    convs = [m.decode() for m in conn.smembers(keys.DEAD_INDEX)]
    for conv in convs:
        for member, score in conn.zrange(keys.dead(conv), 0, -1, withscores=True):
            conn.zadd(keys.pending(conv), {member: score})
        conn.delete(keys.dead(conv))
        conn.srem(keys.DEAD_INDEX, conv)
        conn.zadd(keys.PENDING_INDEX, {conv: 0}, nx=True)
        intake.enqueue_conversation(conn, cfg.queue_name, conv)
    click.echo(f"requeued {len(requeued)} job(s) and {len(convs)} conversation(s)")


def parse_duration(text: str) -> float:
    """`2h`, `90m`, `1d`, `30s` (or plain seconds) → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 2h, 90m or 1d") from None


@hotline.command("reconcile")
@click.option("--since", "since", default=None,
              help="How far back to look, e.g. 2h, 90m, 1d (default: from the last run's mark).")
def reconcile_cmd(since):
    """Take in the texts and calls Twilio has that never reached Hotline (SPEC 10)."""
    from datetime import datetime

    from bot import reconcile
    from bot.errors import PermanentError, TransientError

    seconds = parse_duration(since) if since else None
    rt = runtime.build(_config())
    try:
        report = reconcile.run(rt, since_seconds=seconds)
    except reconcile.Busy:
        raise click.ClickException("another reconciliation is running; try again in a minute")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except TransientError as exc:
        raise click.ClickException(f"Twilio did not answer ({exc}); nothing changed, try again")
    except PermanentError as exc:
        raise click.ClickException(f"Twilio refused ({exc}): check TWILIO_ACCOUNT_SID and "
                                   f"TWILIO_AUTH_TOKEN; nothing changed")
    if report.skipped:
        click.echo(f"nothing to reconcile: {report.skipped}")
        return
    tz = rt.settings.timezone

    def at(ts):
        return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")

    click.echo(f"listed {report.messages_listed} text(s) and {report.calls_listed} call(s) to "
               f"{', '.join(report.numbers) or 'no number'} since {at(report.since)}")
    for r in report.recovered:
        verb = "recovered" if r.outcome != "duplicate" else "already arrived"
        click.echo(f"{verb} {r.kind} {r.sid} from {r.sender} sent {at(r.sent_at)} ({r.outcome})")
    late = len(report.recovered) - len(report.taken_in)
    click.echo(f"recovered {len(report.taken_in)}"
               + (f"; {late} arrived by webhook meanwhile" if late else ""))


@hotline.command("triage")
@click.argument("text")
def triage_cmd(text):
    """Show what triage decides for TEXT, and why (the settings' rules and the model)."""
    from bot.language import NAMES, detect
    from bot.redact import redact

    settings = load_settings(_config().settings_path)
    masked = redact(text)
    decision = settings.triage.decide(masked)
    language = detect(masked, settings.languages)
    click.echo(f"category  {decision.category}")
    click.echo(f"priority  {decision.priority}")
    click.echo(f"why       {decision.why}")
    model = settings.triage.model
    if model:
        t = model.thresholds
        click.echo(f"scores    emergency {decision.score:.2f} (alone at >= {t['emergency']['high']:.2f}, "
                   f"vetoes a rule below {t['emergency']['low']:.2f}) · safety "
                   f"{decision.safety_score:.2f} (alone at >= {t['safety']['high']:.2f}, vetoes below "
                   f"{t['safety']['low']:.2f})")
    else:
        click.echo("scores    no model configured (triage.model): the rules alone decide")
    click.echo(f"tags      {' '.join(decision.tags)}")
    click.echo(f"group     {decision.group_id or '-'}")
    click.echo(f"reply     sms/{decision.template}")
    click.echo(f"language  {NAMES.get(language, language) if language else 'not detected'}")
    if masked != text:
        click.echo(f"redacted  {masked}")


@hotline.group()
def followups():
    """Follow-ups scheduled in RQ (SPEC 7)."""


@followups.command("list")
@click.option("--ticket", type=int, default=None, help="Only this ticket's follow-ups.")
def followups_list(ticket):
    """Show each scheduled follow-up: ticket, step, due time (UTC) and queue.

    A step whose reason has gone since (an answer whose webhook has not come
    yet) is still listed; when due, it re-reads the ticket and does nothing.
    """
    from bot.jobs import scheduled_followups

    found = scheduled_followups(_redis(), _config(), ticket)
    for f in found:
        click.echo(f"ticket {f['ticket']:<8} {f['step']:<15} due {f['due']:%Y-%m-%d %H:%M:%S}Z  "
                   f"{f['queue']}")
    if not found:
        click.echo("no follow-ups scheduled")
