"""Operators and roles: tokens are stored only as SHA-256 hashes in settings; a presented token is hashed and
compared in constant time. Roles are ordered: viewer < operator < admin.

Settings: ``RAMPART_OPERATORS='[{"name": "alice", "role": "operator", "token_sha256": "<64 hex>"}]'``.
Make the hash with ``rampart operators hash-token`` (reads the token from stdin, prints only the hash).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from core.config.security import OperatorConfig

RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Operator:
    name: str
    role: str


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(token: str | None, operators: tuple[OperatorConfig, ...]) -> Operator | None:
    """The operator whose token this is, or None. Compares every entry, in constant time each."""
    if not token:
        return None
    presented = hash_token(token)
    found = None
    for op in operators:
        if hmac.compare_digest(presented, op.token_sha256):
            found = Operator(op.name, op.role)
    return found


def authorize(token: str | None, operators: tuple[OperatorConfig, ...], required: str) -> Operator | Refusal:
    """Who is acting, or why not: no token, an unknown token, or a role below ``required``."""
    if not token:
        return Refusal("OVERRIDE_NO_TOKEN", "an operator token is required")
    op = authenticate(token, operators)
    if op is None:
        return Refusal("OVERRIDE_BAD_TOKEN", "the token matches no operator")
    if RANK[op.role] < RANK[required]:
        return Refusal("OVERRIDE_FORBIDDEN", f"{op.name} is a {op.role}; this needs the {required} role")
    return op
