"""Console sessions and CSRF tokens: HMAC-signed cookies; server-side, only the sessions ended by logging out
(adapters/tables.py ConsoleLogoutRow, until their cookies expire), so a copy of the cookie dies with the logout.

A session cookie names the principal and the SHA-256 of the token it logged in with, so rotating or revoking
the principal ends every session at once (each request reloads the principal and compares the hash; the
token itself never leaves the login form). Each session has a random id; its CSRF token is an HMAC of that
id (synchronizer pattern without server state): a forged form from another site cannot know it, and the
cookie is SameSite=Strict besides. Before login there is no session, so the login form is protected by a
double-submit pair: a signed random nonce in a cookie and the same nonce in the form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from shared.config import Settings
from shared.json_input import parse_json
from shared.security.keys import load_or_create_secret

SESSION_COOKIE = "tg_console"
LOGIN_COOKIE = "tg_console_login"
KEY_FILE = "console_session.key"
MAX_COOKIE_CHARS = 1024


class SessionInvalid(ValueError):
    """A cookie that is missing, altered, or not ours."""


class SessionExpired(ValueError):
    """A genuine session past its expiry."""


@dataclass(frozen=True)
class ConsoleSession:
    principal: str
    token_sha256: str
    session_id: str
    expires_at: int


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_home(cls, settings: Settings) -> SessionCodec:
        """The signing key lives 0600 in `$TUNEGATE_HOME/keys`, created on first use, beside the service's other
        symmetric state keys (canary, erasure). Not in TUNEGATE_KEYS_DIR: deployments mount that folder
        read-only with the signing keys `tunegate secrets generate` made. Sessions survive a registry restart,
        and registry processes sharing the home share them."""
        return cls(load_or_create_secret(settings.path("keys", KEY_FILE), what="console session key"))

    def _mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self._key, purpose.encode() + b"\x00" + data, hashlib.sha256).hexdigest()

    def _seal(self, purpose: str, body: dict[str, object]) -> str:
        data = base64.urlsafe_b64encode(json.dumps(body, sort_keys=True).encode()).decode().rstrip("=")
        return f"{data}.{self._mac(purpose, data.encode())}"

    def _open(self, purpose: str, cookie: str | None) -> dict[str, object]:
        if not cookie or len(cookie) > MAX_COOKIE_CHARS or "." not in cookie:
            raise SessionInvalid("no console session: log in")
        data, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(purpose, data.encode())):
            raise SessionInvalid("the console session cookie was not issued by this registry: log in again")
        try:
            body = parse_json(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        except ValueError:
            raise SessionInvalid("the console session cookie is unreadable: log in again") from None
        if not isinstance(body, dict):
            raise SessionInvalid("the console session cookie is unreadable: log in again")
        return body

    # ------------------------------------------------------------ sessions

    def issue(self, principal: str, token_sha256: str, *, now: float, ttl_s: int) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(principal, token_sha256, secrets.token_hex(16), int(now) + ttl_s)
        cookie = self._seal(
            "session",
            {"p": session.principal, "t": session.token_sha256, "s": session.session_id, "e": session.expires_at},
        )
        return cookie, session

    def read(self, cookie: str | None, *, now: float) -> ConsoleSession:
        body = self._open("session", cookie)
        try:
            session = ConsoleSession(str(body["p"]), str(body["t"]), str(body["s"]), int(body["e"]))  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError):
            raise SessionInvalid("the console session cookie is unreadable: log in again") from None
        if session.expires_at <= now:
            raise SessionExpired("your console session expired: log in again")
        return session

    def csrf_token(self, session: ConsoleSession) -> str:
        return self._mac("csrf", session.session_id.encode())

    def csrf_ok(self, session: ConsoleSession, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(str(submitted), self.csrf_token(session))

    # ------------------------------------------------------------ the login form (no session yet)

    def login_nonce(self) -> tuple[str, str]:
        """(cookie, form value): the form must send back the nonce the cookie carries."""
        nonce = secrets.token_hex(16)
        return self._seal("login", {"n": nonce}), nonce

    def login_nonce_ok(self, cookie: str | None, submitted: str | None) -> bool:
        try:
            body = self._open("login", cookie)
        except SessionInvalid:
            return False
        return bool(submitted) and hmac.compare_digest(str(body.get("n", "")), str(submitted))
