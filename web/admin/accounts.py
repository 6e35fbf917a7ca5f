"""Operators' accounts (SPEC 6): names and password hashes in Redis.

Hashing is werkzeug.security's (scrypt, salted, constant-time check): Flask
already depends on it, Pallets maintain it, and it needs no native build.
While no account exists, `admin` signs in with ADMIN_PASSWORD.
"""
from __future__ import annotations

import hmac
import re

import redis
from werkzeug.security import check_password_hash, generate_password_hash

from bot import keys

BOOTSTRAP = "admin"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    pass


def add(conn: redis.Redis, name: str, password: str) -> None:
    """Create or reset account `name`."""
    if not NAME.match(name):
        raise AccountError("name: lower-case letters, digits, '.', '_' or '-', up to 64")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    conn.hset(keys.OPERATORS, name, generate_password_hash(password))


def names(conn: redis.Redis) -> list[str]:
    """Every account's name, sorted."""
    return sorted(n.decode() for n in conn.hkeys(keys.OPERATORS))


def remove(conn: redis.Redis, name: str) -> bool:
    """Delete account `name` (its sessions end at their next request); False if there was none."""
    return bool(conn.hdel(keys.OPERATORS, name))


def exists(conn: redis.Redis, name: str, admin_password: str) -> bool:
    """Whether `name` may hold a session (the account may have been deleted since)."""
    if conn.hexists(keys.OPERATORS, name):
        return True
    return name == BOOTSTRAP and bool(admin_password) and not conn.hlen(keys.OPERATORS)


def verify(conn: redis.Redis, name: str, password: str, admin_password: str) -> bool:
    """Whether `password` is `name`'s; the bootstrap admin only while no account exists."""
    stored = conn.hget(keys.OPERATORS, name)
    if stored is not None:
        return check_password_hash(stored.decode(), password)
    if name == BOOTSTRAP and admin_password and not conn.hlen(keys.OPERATORS):
        return hmac.compare_digest(password.encode(), admin_password.encode())
    return False
