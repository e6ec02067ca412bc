"""People, teams, log-in tokens and the audit log in Postgres (migration 0002)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import asyncpg

from ccserver.api.passwords import hash_password

Role = Literal["admin", "supervisor", "agent"]


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in, with what they may see: ``agents`` / ``queues`` of their teams."""

    id: int
    username: str
    display_name: str
    role: Role
    agent_id: str | None
    disabled: bool
    #: agents and queues of the teams this user supervises (empty unless supervisor)
    team_agents: frozenset[str] = frozenset()
    team_queues: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Team:
    """A team: its agents, the queues it works and its supervisors (user ids)."""

    id: int
    name: str
    agents: tuple[str, ...]
    queues: tuple[str, ...]
    supervisors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A bearer token as its owner may see it (the secret is never stored)."""

    id: int
    label: str
    created_at: datetime
    expires_at: datetime


class Conflict(Exception):
    """A unique name is already taken."""


def token_digest(token: str) -> bytes:
    """What is stored for a session or bearer token: its sha256, never the token."""
    return hashlib.sha256(token.encode()).digest()


class Store:
    """All SQL of the API, over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ---- users ------------------------------------------------------------------------------

    async def create_user(self, username: str, password: str, role: Role, display_name: str = "",
                          agent_id: str | None = None) -> User:
        """Create a user; :class:`Conflict` if the name or agent is already linked."""
        hashed = await asyncio.to_thread(hash_password, password)  # ~50 ms: off the event loop
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO users (username, display_name, role, password_hash, agent_id) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING *",
                username, display_name, role, hashed, agent_id,
            )
        except asyncpg.UniqueViolationError as e:
            raise Conflict(e.detail or "already exists") from None
        return _user(row)

    async def credentials(self, username: str) -> tuple[User, str] | None:
        """The user and password hash for a log-in, or None if unknown."""
        row = await self.pool.fetchrow("SELECT * FROM users WHERE username = $1", username)
        return (_user(row), row["password_hash"]) if row else None

    async def user(self, user_id: int) -> User | None:
        row = await self.pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
        return await self._with_scope(_user(row)) if row else None

    async def users(self) -> list[User]:
        return [_user(r) for r in await self.pool.fetch("SELECT * FROM users ORDER BY id")]

    async def update_user(self, user_id: int, *, disabled: bool, display_name: str, role: Role,
                          agent_id: str | None) -> User | None:
        """Set a user's fields; None if unknown, :class:`Conflict` if the agent is linked to another.

        Disabling revokes every session and token; a user who stops being a supervisor leaves
        the teams they supervised.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    "UPDATE users SET disabled = $2, display_name = $3, role = $4, agent_id = $5 "
                    "WHERE id = $1 RETURNING *", user_id, disabled, display_name, role, agent_id)
            except asyncpg.UniqueViolationError as e:
                raise Conflict(e.detail or "already exists") from None
            if row is None:
                return None
            if disabled:
                await _revoke_all(conn, user_id)
            if role != "supervisor":
                await conn.execute("DELETE FROM team_supervisors WHERE user_id = $1", user_id)
        return _user(row)

    async def set_password(self, user_id: int, password: str) -> int | None:
        """Set a user's password and revoke all their sessions and tokens (how many); None if unknown."""
        hashed = await asyncio.to_thread(hash_password, password)
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, hashed)
            if done == "UPDATE 0":
                return None
            return await _revoke_all(conn, user_id)

    async def _with_scope(self, user: User) -> User:
        if user.role != "supervisor":
            return user
        rows = await self.pool.fetch(
            "SELECT 'a' AS k, ta.agent_id AS v FROM team_agents ta JOIN team_supervisors ts USING (team_id) "
            "WHERE ts.user_id = $1 UNION ALL "
            "SELECT 'q', tq.queue FROM team_queues tq JOIN team_supervisors ts USING (team_id) WHERE ts.user_id = $1",
            user.id,
        )
        return User(user.id, user.username, user.display_name, user.role, user.agent_id, user.disabled,
                    frozenset(r["v"] for r in rows if r["k"] == "a"),
                    frozenset(r["v"] for r in rows if r["k"] == "q"))

    # ---- teams ------------------------------------------------------------------------------

    async def create_team(self, name: str) -> Team:
        try:
            row = await self.pool.fetchrow("INSERT INTO teams (name) VALUES ($1) RETURNING *", name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"team {name!r} already exists") from None
        return Team(row["id"], row["name"], (), (), ())

    async def set_team_members(self, team_id: int, agents: list[str], queues: list[str],
                               supervisors: list[int]) -> Team | None:
        """Replace a team's agents, queues and supervisors; None if the team is unknown."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM teams WHERE id = $1 FOR UPDATE", team_id) is None:
                return None
            for table in ("team_agents", "team_queues", "team_supervisors"):
                await conn.execute(f"DELETE FROM {table} WHERE team_id = $1", team_id)
            await conn.executemany("INSERT INTO team_agents VALUES ($1, $2)", [(team_id, a) for a in agents])
            await conn.executemany("INSERT INTO team_queues VALUES ($1, $2)", [(team_id, q) for q in queues])
            await conn.executemany("INSERT INTO team_supervisors VALUES ($1, $2)",
                                   [(team_id, s) for s in supervisors])
        return next(t for t in await self.teams() if t.id == team_id)

    async def teams(self) -> list[Team]:
        rows = await self.pool.fetch(
            "SELECT t.id, t.name, "
            "ARRAY(SELECT agent_id FROM team_agents WHERE team_id = t.id ORDER BY 1) AS agents, "
            "ARRAY(SELECT queue FROM team_queues WHERE team_id = t.id ORDER BY 1) AS queues, "
            "ARRAY(SELECT user_id FROM team_supervisors WHERE team_id = t.id ORDER BY 1) AS sups "
            "FROM teams t ORDER BY t.id"
        )
        return [Team(r["id"], r["name"], tuple(r["agents"]), tuple(r["queues"]), tuple(r["sups"])) for r in rows]

    # ---- sessions and tokens ----------------------------------------------------------------

    async def issue(self, user_id: int, kind: Literal["session", "token"], lifetime: timedelta,
                    label: str = "") -> tuple[int, str, datetime]:
        """A new random session / bearer token (id, the secret, expiry); only its hash is kept."""
        token = secrets.token_urlsafe(32)
        expires = datetime.now(timezone.utc) + lifetime
        token_id = await self.pool.fetchval(
            "INSERT INTO auth_tokens (token_sha256, kind, user_id, label, expires_at) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            token_digest(token), kind, user_id, label, expires,
        )
        return token_id, token, expires

    async def resolve(self, token: str, kind: Literal["session", "token"]) -> tuple[int, User] | None:
        """(token id, user) for a live, unrevoked token of an enabled user, else None."""
        row = await self.pool.fetchrow(
            "SELECT t.id AS token_id, u.* FROM auth_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_sha256 = $1 AND t.kind = $2 AND t.revoked_at IS NULL "
            "AND t.expires_at > now() AND NOT u.disabled",
            token_digest(token), kind,
        )
        return (row["token_id"], await self._with_scope(_user(row))) if row else None

    async def tokens(self, user_id: int) -> list[TokenInfo]:
        """A user's live (unrevoked, unexpired) bearer tokens, oldest first; never a secret."""
        rows = await self.pool.fetch(
            "SELECT id, label, created_at, expires_at FROM auth_tokens WHERE user_id = $1 AND kind = 'token' "
            "AND revoked_at IS NULL AND expires_at > now() ORDER BY id", user_id)
        return [TokenInfo(r["id"], r["label"], r["created_at"], r["expires_at"]) for r in rows]

    async def revoke(self, token_id: int, user_id: int | None = None) -> bool:
        """Revoke a token (only the owner's when ``user_id`` is given); False if none matched."""
        done = await self.pool.execute(
            "UPDATE auth_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
            "AND ($2::integer IS NULL OR user_id = $2)", token_id, user_id,
        )
        return done != "UPDATE 0"

    # ---- audit ------------------------------------------------------------------------------

    async def audit(self, user: User | None, action: str, target: str, detail: dict, remote: str,
                    outcome: Literal["ok", "denied", "failed"], username: str | None = None) -> None:
        """Append one audit row."""
        await self.pool.execute(
            "INSERT INTO audit_log (user_id, username, action, target, detail, remote, outcome) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
            user.id if user else None, user.username if user else (username or ""), action, target,
            json.dumps(detail), remote, outcome,
        )

    async def audit_rows(self, *, username: str | None, action: str | None, since: datetime | None,
                         until: datetime | None, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR username = $1) "
            "AND ($2::text IS NULL OR action = $2) AND ($3::timestamptz IS NULL OR at >= $3) "
            "AND ($4::timestamptz IS NULL OR at < $4) ORDER BY id DESC LIMIT $5",
            username, action, since, until, limit,
        )


async def _revoke_all(conn: asyncpg.Connection, user_id: int) -> int:
    """Revoke every live session and token of a user; how many."""
    done = await conn.execute("UPDATE auth_tokens SET revoked_at = now() "
                              "WHERE user_id = $1 AND revoked_at IS NULL", user_id)
    return int(done.split()[-1])


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["username"], row["display_name"], row["role"], row["agent_id"], row["disabled"])
