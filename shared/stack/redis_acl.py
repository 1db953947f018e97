"""Redis users for the embedded Redis: one per service, one for the operator's CLI, one administrator.

Least privilege, derived from the roster: a service may read and write only the streams of the types it
consumes or emits (their dead-letter twins and the bus stream included), its own error hash and heartbeat
keys, and nothing else; the operator user reads every stream and heartbeat (status, watch) and may add
to the jobs stream (a principal's signed `job.requested`). The default user cannot log in. Passwords are
random, stored 0600 under `$TUNEGATE_HOME/redis/credentials/`; the ACL file holds only their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.events.catalog import CATALOG
from shared.events.streams import ALL_STREAMS, Stream, dlq_name
from shared.roster import SERVICES, ServiceSpec
from shared.security.keys import write_secret

OPERATOR = "operator"
ADMIN = "admin"

# Every command the bus runtime issues (redis-py and FastStream), by what it is for.
_BUS_COMMANDS = (
    "+@connection",  # AUTH, HELLO, PING, CLIENT SETINFO/SETNAME, SELECT
    "+xadd", "+xreadgroup", "+xack", "+xautoclaim", "+xclaim", "+xpending", "+xlen", "+xrange",
    "+xgroup|create", "+xinfo|groups", "+xinfo|stream",
    "+multi", "+exec", "+discard",
    "+hset", "+hget", "+hdel",  # the per-group error hash
    "+set", "+get",  # heartbeats
)
# Leases with fencing tokens (shared/stack/lease.py), and the gateway's per-key budgets (a sliding log in a
# sorted set and a token hash, read against the server's clock: services/gateway/adapters/rate_limits.py).
# Redis checks the commands a script calls too, so the script's commands are listed here as well.
_LEASE_COMMANDS = (
    "+set", "+get", "+del", "+incr", "+incrby", "+pexpire", "+eval", "+evalsha", "+script|load",
    "+time", "+zadd", "+zremrangebyscore", "+zcard", "+zrange", "+hget", "+hset",
)
_OPERATOR_COMMANDS = (
    "+@connection", "+xadd", "+xlen", "+xrange", "+xrevrange", "+xread", "+xinfo|groups", "+xinfo|stream",
    "+xpending", "+get", "+scan",
)


# The default user can never log in (off, no password), but keeps every permission: Redis replays the AOF
# as the default user and re-checks each MULTI/EXEC's commands against it, so with `-@all` every transaction
# in the AOF (a dead-letter move, an ack with its error cleared) is silently dropped on restart
# (redis/redis#14541, fixed after 7.2; found by tests/chaos; tests/stack/test_embedded_redis_security.py).
DEFAULT_USER = "user default off resetpass resetchannels resetkeys ~* &* +@all"


@dataclass(frozen=True)
class RedisUser:
    name: str
    keys: tuple[str, ...]
    commands: tuple[str, ...]

    def acl_line(self, password: str) -> str:
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        keys = " ".join(pattern if pattern.startswith("%") else f"~{pattern}" for pattern in self.keys)
        return f"user {self.name} on #{digest} resetchannels {keys} -@all {' '.join(self.commands)}"


def _streams_for(spec: ServiceSpec) -> set[str]:
    if spec.consumes_every_type():
        streams = {s.value for s in ALL_STREAMS}
    else:
        streams = {CATALOG[t].stream.value for t in spec.consumes}
    streams |= {CATALOG[t].stream.value for t in spec.emits}
    streams.add(Stream.BUS.value)  # refusals are recorded there by whoever refuses
    return streams | {dlq_name(s) for s in streams}


def service_user(spec: ServiceSpec) -> RedisUser:
    keys = [*sorted(_streams_for(spec)), f"tunegate:errors:tunegate-{spec.name}", f"tunegate:heartbeat:{spec.name}:*"]
    commands = _BUS_COMMANDS
    if spec.lease_namespace:
        keys.append(f"tunegate:{spec.lease_namespace}:*")  # leases, fencing tokens, cancel flags
        commands = (*commands, *_LEASE_COMMANDS)
    return RedisUser(spec.name, tuple(keys), tuple(dict.fromkeys(commands)))


def users() -> list[RedisUser]:
    found = [service_user(spec) for spec in SERVICES]
    # Reads everything it shows; writes only the jobs stream (a principal's signed job.requested).
    leases = tuple(f"%R~tunegate:{spec.lease_namespace}:*" for spec in SERVICES if spec.lease_namespace)
    operator_keys = ("%R~tunegate.*", "%R~tunegate:heartbeat:*", *leases, "tunegate.jobs")
    found.append(RedisUser(OPERATOR, operator_keys, _OPERATOR_COMMANDS))
    found.append(RedisUser(ADMIN, ("*",), ("+@all",)))
    return found


class RedisCredentials:
    """Passwords under `<redis dir>/credentials/<user>` (0600) and the ACL file Redis loads."""

    def __init__(self, redis_dir: Path) -> None:
        self.directory = redis_dir / "credentials"
        self.acl_file = redis_dir / "users.acl"

    def password(self, user: str) -> str | None:
        path = self.directory / user
        return path.read_text().strip() if path.exists() else None

    def ensure(self) -> Path:
        """Create missing passwords and (re)write the ACL file from the roster; returns the ACL file."""
        lines = [DEFAULT_USER]
        for user in users():
            password = self.password(user.name)
            if password is None:
                password = secrets.token_urlsafe(32)
                write_secret(self.directory / user.name, password.encode("ascii"))
            lines.append(user.acl_line(password))
        write_secret(self.acl_file, ("\n".join(lines) + "\n").encode("ascii"))
        return self.acl_file

    def url_for(self, base_url: str, user: str) -> str:
        """`redis://host:port/db` with this user's credentials, when the embedded Redis has users."""
        password = self.password(user)
        if password is None:
            return base_url
        scheme, rest = base_url.split("://", 1)
        return f"{scheme}://{user}:{password}@{rest}"
