"""Settings module for `rq worker --config bot.rqconfig` (see Procfile).

Reads REDIS_URL (and `.env`), understanding the Sentinel form that
`bot.redisconn` understands too.
"""
import os

from bot.config import load_dotenv_once
from bot.redisconn import parse_sentinel_url

load_dotenv_once()
_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SENTINEL = parse_sentinel_url(_url)
if SENTINEL is None:
    REDIS_URL = _url
