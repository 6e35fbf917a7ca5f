#!/usr/bin/env bash
# `make run`: web + worker (+ a private Redis when REDIS_URL is unset) from the Procfile.
# Without Zendesk/Twilio credentials it runs in local mode: a SQLite desk and
# outbox at http://127.0.0.1:$PORT/local/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a
export PORT="${PORT:-8000}"
# Only this machine can reach it unless told otherwise (HOTLINE_BIND=0.0.0.0).
export HOTLINE_BIND="${HOTLINE_BIND:-127.0.0.1}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
mkdir -p var/redis

if [ -z "${REDIS_URL:-}" ]; then
  REDIS_PORT="${HOTLINE_REDIS_PORT:-6390}"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$PWD/var/redis/redis.pid" --logfile "$PWD/var/redis/redis.log"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  STARTED_REDIS=1
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "private Redis on $REDIS_URL (data in var/redis)"
fi

if [ -z "${ZENDESK_API_TOKEN:-}" ] || [ -z "${TWILIO_AUTH_TOKEN:-}" ]; then
  export HOTLINE_LOCAL_MODE=1
  echo "local mode: no Zendesk/Twilio credentials — desk and outbox at $PUBLIC_BASE_URL/local/"
  echo "webhooks are checked against local secrets in var/local-secrets.json (flask hotline simulate signs with them)"
  echo "try: .venv/bin/flask hotline simulate sms --from +15551230001 \"my dog is hurt\""
fi

if [ -n "${HOTLINE_LOCAL_MODE:-}" ]; then
  # SECRET_KEY, like the webhook secrets, is made at random in var/local-secrets.json.
  if [ -z "${ADMIN_PASSWORD:-}" ]; then
    ADMIN_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
    export ADMIN_PASSWORD
  fi
  if [ "$(redis-cli -u "$REDIS_URL" hlen hotline:operators 2>/dev/null || echo 0)" = "0" ]; then
    echo "operators' console at $PUBLIC_BASE_URL/admin/ — sign in as admin / $ADMIN_PASSWORD"
    echo "  (until an account exists: flask hotline users add NAME)"
  else
    echo "operators' console at $PUBLIC_BASE_URL/admin/ — sign in with your account"
  fi
fi

# Let `flask hotline …` in another terminal find this instance; gone when it stops.
{
  echo "REDIS_URL=$REDIS_URL"
  echo "PUBLIC_BASE_URL=$PUBLIC_BASE_URL"
  [ -n "${HOTLINE_LOCAL_MODE:-}" ] && echo "HOTLINE_LOCAL_MODE=$HOTLINE_LOCAL_MODE"
} > var/run.env
export PATH="$PWD/.venv/bin:$PATH"
# honcho in the background, so that Ctrl-C stops web and worker first (they finish their
# jobs and let go of Redis), and only then the private Redis.
honcho start -f Procfile &
HONCHO=$!
stop() { kill -TERM "$HONCHO" 2>/dev/null || true; }
cleanup() {
  wait "$HONCHO" 2>/dev/null || true
  rm -f var/run.env
  if [ -n "${STARTED_REDIS:-}" ]; then
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$(cat var/redis/redis.pid)" 2>/dev/null || true
    echo "stopped the private Redis"
  fi
}
trap stop INT TERM
trap cleanup EXIT
wait "$HONCHO" || true
