"""Who may use the console: sessions (Flask-Login), CSRF (Flask-WTF), slowed failures
(Flask-Limiter on Redis) and HTTP basic auth for scripts, all from the same accounts."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, abort, current_app, flash, jsonify, redirect,
                   render_template, request, session, url_for)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from handlers.common import state
from web.admin import accounts, api

bp = Blueprint("admin_auth", __name__, url_prefix="/admin",
               template_folder="templates", static_folder="static")

# Blueprints whose views need a signed-in operator (rq-dashboard's is added when mounted).
PROTECTED = {"admin", "admin_api", "admin_queues", "rq_dashboard"}
API = {"admin_api"}
SAFE = ("GET", "HEAD", "OPTIONS")
# rq-dashboard's writes carry no CSRF token, and this one also answers GET.
DASHBOARD_GET_WRITES = {"rq_dashboard.requeue_all"}
# Failed sign-ins: per address, and per account name whatever the address.
FAILURES_PER_ADDRESS = "5 per minute"
FAILURES_PER_NAME = "20 per hour"
FAILED_API_CALLS = "10 per minute"


class Operator(UserMixin):
    def __init__(self, name: str):
        self.id = name


def _is_api() -> bool:
    return request.blueprint in API


def _basic_auth_request() -> bool:
    return request.authorization is not None and request.authorization.type == "basic"


def _failed(response) -> bool:
    return response.status_code == 401


def init_app(app: Flask, config) -> None:
    https = config.public_base_url.startswith("https://")
    app.secret_key = config.secret_key
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https, PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        # CSRF is checked by `guard` below: on every form and every session-authenticated
        # API call; basic-auth API scripts send JSON instead.
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_HEADERS_ENABLED=True, RATELIMIT_SWALLOW_ERRORS=True,
    )
    login = LoginManager(app)
    csrf = CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri=config.redis_url,
                      storage_options={"socket_timeout": 1, "socket_connect_timeout": 1},
                      default_limits=[], key_prefix="hotline:ratelimit")
    limiter.limit(FAILURES_PER_ADDRESS, methods=["POST"], deduct_when=_failed)(bp)
    limiter.limit(FAILURES_PER_NAME, methods=["POST"], deduct_when=_failed,
                  key_func=lambda: "name:" + request.form.get("name", "").strip().lower())(bp)
    limiter.limit(FAILED_API_CALLS, deduct_when=_failed)(api.bp)
    # Webhooks never reach the limiter: it is for the console alone.
    limiter.request_filter(lambda: request.blueprint not in (bp.name, api.bp.name))

    @login.user_loader
    def load_user(name: str):
        st = state()
        return Operator(name) if accounts.exists(st.redis, name, st.config.admin_password) else None

    @login.request_loader
    def load_from_basic_auth(req):
        auth = req.authorization
        if auth is None or auth.type != "basic":
            return None
        st = state()
        if accounts.verify(st.redis, auth.username or "", auth.password or "",
                           st.config.admin_password):
            return Operator(auth.username)
        return None

    @login.unauthorized_handler
    def unauthorized():
        if _is_api():
            return jsonify(error="unauthorized", reason="sign in, or use HTTP basic auth"), 401, \
                ({} if request.headers.get("X-CSRFToken") else
                 {"WWW-Authenticate": 'Basic realm="Hotline operators"'})
        return redirect(url_for("admin_auth.login", next=request.full_path.rstrip("?")))

    @app.before_request
    def guard():
        if request.blueprint not in PROTECTED:
            return None
        if not current_user.is_authenticated:
            return login.unauthorized()
        if request.blueprint == "rq_dashboard" and (
                request.method not in SAFE or request.endpoint in DASHBOARD_GET_WRITES):
            return _same_origin_only()
        if request.method in SAFE:
            return None
        if _is_api() and _basic_auth_request():
            # Scripts: no token to carry, but JSON, which a cross-site form cannot send
            # (even with basic credentials a browser cached).
            if not request.is_json:
                return jsonify(error="unsupported", reason="send application/json"), 415
            return None
        csrf.protect()
        return None

    @app.errorhandler(CSRFError)
    def csrf_refused(exc):
        if _is_api():
            return jsonify(error="csrf", reason=exc.description), 400
        return render_template("admin/message.html", title="Please try again",
                               message=f"{exc.description} Reload the page and try again."), 400

    @app.errorhandler(429)
    def too_many(exc):
        if request.blueprint != bp.name and not _is_api():
            return exc
        if _is_api():
            return jsonify(error="rate_limited", reason=f"too many failed attempts ({exc.description})"), 429
        return render_template("admin/login.html", next=request.values.get("next", ""),
                               error="Too many failed attempts. Wait a minute and try again."), 429


def _same_origin_only():
    """rq-dashboard posts without CSRF tokens: accept only requests from our own pages."""
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if urlsplit(origin).netloc != request.host:
        abort(403)
    return None


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host): an open redirect is a phishing tool."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("admin.home")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("admin.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    nxt = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(nxt))
        return render_template("admin/login.html", next=nxt, error=None)
    _check_csrf()
    st = state()
    name = request.form.get("name", "").strip().lower()
    if accounts.verify(st.redis, name, request.form.get("password", ""), st.config.admin_password):
        login_user(Operator(name))
        session.permanent = True
        return redirect(_safe_next(nxt))
    return render_template("admin/login.html", next=nxt, name=name,
                           error="That name and password do not match."), 401


def _check_csrf():
    current_app.extensions["csrf"].protect()  # raises CSRFError: answered as a 400 above


@bp.post("/logout")
def logout():
    _check_csrf()
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("admin_auth.login"))
