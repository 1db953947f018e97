"""Response provenance (EU AI Act Art. 50): a signed statement that a response came from this gateway.

The statement binds three things: the model version that answered, the SHA-256 of the response text and the
id of the `inference.completed` event that records the request in the audit ledger. It is signed with the
gateway's Ed25519 service key (shared/security/signing.py, identity `gateway`) and travels twice: in the
`x-tunegate-provenance` header and in the body at `tunegate.provenance` (an object with the same fields).

What is hashed (`response_sha256`): the UTF-8 bytes of the assistant text exactly as the client received it,
that is after response DLP redaction. For a chat completion that is `choices[0].message.content`, for a text
completion `choices[0].text`; a streamed response hashes the concatenation of every delta's text. Nothing
else (role, finish reason, usage) is covered: the statement is about the text. One statement covers one
choice, so the gateway signs responses with n=1.

What is signed (`statement_bytes`): the domain tag `tunegate.provenance/v1` and a newline, then the canonical
JSON (shared/canonical.py) of {"event_id", "model_version", "response_sha256"}. The key id is not signed: it
only names which key to check with, and a forged key id can only make verification fail.

Header format, one line of `name=value` pairs separated by "; " in this order:
`v=1; key=<key id>; version=<model version>; sha256=<64 hex>; event=<event id>; sig=<base64url, no padding>`.
Model versions and event ids are percent-encoded (RFC 3986 unreserved characters and ":@/+" stay as they
are), so any name fits in a header and ";" or "=" inside a name cannot be confused with the syntax.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.canonical import canonical_json
from shared.security.keys import key_id_for

if TYPE_CHECKING:
    from shared.security.signing import EnvelopeSigner

HEADER_NAME = "x-tunegate-provenance"
BODY_FIELD = "provenance"  # inside the body's `tunegate` object
DOMAIN_TAG = b"tunegate.provenance/v1\n"
FORMAT_VERSION = 1
MAX_HEADER_CHARS = 4_096
_SAFE_IN_VALUE = "-._~:@/+"
_HEADER_KEYS = ("v", "key", "version", "sha256", "event", "sig")


class ProvenanceError(ValueError):
    """A provenance statement that does not verify; the subclass says why."""


class MalformedProvenance(ProvenanceError):
    """The header or body field cannot be parsed."""


class WrongKey(ProvenanceError):
    """The statement names a key other than the one it is being checked with (or no trusted key has its id)."""


class BadSignature(ProvenanceError):
    """The signature does not match the statement under the named key: version, hash or event id altered."""


class TextMismatch(ProvenanceError):
    """The signature is good but the text given is not the text that was signed."""


class Provenance(BaseModel):
    """A parsed statement: what the header and the body field carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(default=FORMAT_VERSION, ge=FORMAT_VERSION, le=FORMAT_VERSION)
    key: str = Field(pattern=r"^[0-9a-f]{16}$", description="Key id (shared/security/keys.py key_id_for).")
    version: str = Field(min_length=1, max_length=200, description="The model version that answered.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="response_sha256 of the text.")
    event: str = Field(min_length=1, max_length=64, description="The audit event id of the request.")
    sig: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$", description="Ed25519 signature, base64url without padding.")

    @property
    def key_id(self) -> str:
        return self.key

    @property
    def model_version(self) -> str:
        return self.version

    @property
    def response_sha256(self) -> str:
        return self.sha256

    @property
    def event_id(self) -> str:
        return self.event

    def header_value(self) -> str:
        return "; ".join(f"{name}={_encode(str(getattr(self, name)))}" for name in _HEADER_KEYS)

    def body_value(self) -> dict[str, Any]:
        """The object the gateway puts at `tunegate.provenance` in a response body."""
        return self.model_dump()

    def signature_bytes(self) -> bytes:
        return base64.urlsafe_b64decode(self.sig + "==")


def response_sha256(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of the assistant text the client received (after redaction)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def statement_bytes(model_version: str, response_sha256: str, event_id: str) -> bytes:
    """The bytes that are signed: domain tag, then canonical JSON of the three facts."""
    return DOMAIN_TAG + canonical_json(
        {"event_id": event_id, "model_version": model_version, "response_sha256": response_sha256}
    )


class ProvenanceSigner:
    """Signs provenance statements with one Ed25519 key (the gateway's service key)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_for(self.public_key)

    @classmethod
    def from_signer(cls, signer: EnvelopeSigner) -> ProvenanceSigner:
        """Sign with a service's event-signing key (the gateway's: KeyDirectory(keys_dir).signer("gateway"))."""
        return cls(signer.private_key)

    def sign(self, model_version: str, response_sha256: str, event_id: str) -> tuple[str, dict[str, Any]]:
        """The header value and the body's `tunegate.provenance` object for one response."""
        provenance = self.statement(model_version, response_sha256, event_id)
        return provenance.header_value(), provenance.body_value()

    def statement(self, model_version: str, response_sha256: str, event_id: str) -> Provenance:
        """The signed statement; MalformedProvenance when a field cannot be expressed (a bad hash, a name
        over 200 characters)."""
        signature = self._private_key.sign(statement_bytes(model_version, response_sha256, event_id))
        try:
            return Provenance(
                key=self.key_id,
                version=model_version,
                sha256=response_sha256,
                event=event_id,
                sig=base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
            )
        except ValidationError as exc:
            raise MalformedProvenance(f"cannot sign this statement: {_first_error(exc)}") from None

    def header(self, model_version: str, response_sha256: str, event_id: str) -> str:
        """The `x-tunegate-provenance` header value for one response."""
        return self.statement(model_version, response_sha256, event_id).header_value()


def parse_header(value: str) -> Provenance:
    """Parse an `x-tunegate-provenance` value; MalformedProvenance says what is wrong with it."""
    if len(value) > MAX_HEADER_CHARS:
        raise MalformedProvenance(f"provenance header is longer than {MAX_HEADER_CHARS} characters")
    fields: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, raw = part.strip().partition("=")
        if not sep:
            raise MalformedProvenance(f"provenance header: {part.strip()!r} is not name=value")
        if name not in _HEADER_KEYS:
            raise MalformedProvenance(f"provenance header: unknown field {name!r}")
        if name in fields:
            raise MalformedProvenance(f"provenance header: field {name!r} given twice")
        try:
            fields[name] = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise MalformedProvenance(f"provenance header: {name} is not percent-encoded UTF-8") from None
    return parse_body(fields, where="provenance header")


def parse_body(value: object, *, where: str = "tunegate.provenance") -> Provenance:
    """Parse the body's `tunegate.provenance` object (same fields as the header)."""
    if not isinstance(value, dict):
        raise MalformedProvenance(f"{where}: expected an object, got {type(value).__name__}")
    missing = [name for name in _HEADER_KEYS if name not in value]
    if missing:
        raise MalformedProvenance(f"{where}: missing {', '.join(missing)}")
    if str(value["v"]) != str(FORMAT_VERSION):
        raise MalformedProvenance(f"{where}: format version {value['v']!r} is not supported (expected 1)")
    try:
        return Provenance.model_validate({**value, "v": FORMAT_VERSION})
    except ValidationError as exc:
        raise MalformedProvenance(f"{where}: {_first_error(exc)}") from None


def verify(provenance: Provenance, public_key: Ed25519PublicKey, text: str | None = None) -> None:
    """Raise WrongKey, BadSignature or TextMismatch unless `public_key` signed this statement (and, when
    `text` is given, the statement is about exactly that text). Returns None when everything holds."""
    actual_id = key_id_for(public_key)
    if provenance.key != actual_id:
        raise WrongKey(f"signed by key {provenance.key}, but checked against key {actual_id}")
    try:
        signature = provenance.signature_bytes()
    except (binascii.Error, ValueError):  # the pattern makes this unreachable; kept so no traceback escapes
        raise MalformedProvenance("sig is not base64url") from None
    try:
        public_key.verify(signature, statement_bytes(provenance.version, provenance.sha256, provenance.event))
    except InvalidSignature:
        raise BadSignature(
            f"signature by key {provenance.key} does not match (model version, response sha256, event id):"
            " the statement was altered"
        ) from None
    if text is not None:
        actual = response_sha256(text)
        if actual != provenance.sha256:
            raise TextMismatch(
                f"text sha256 {actual} differs from the signed {provenance.sha256}: the text was altered"
            )


def _encode(value: str) -> str:
    return quote(value, safe=_SAFE_IN_VALUE)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    return f"{where}: {error['msg']}"



def response_text(body: object) -> str:
    """The text a response's provenance covers: `choices[0].message.content` of a chat completion,
    `choices[0].text` of a text completion. MalformedProvenance when the body is neither."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedProvenance("response body has no choices[0] (not an OpenAI completion response)")
    if len(choices) != 1:
        raise MalformedProvenance(f"response body has {len(choices)} choices; provenance covers responses with n=1")
    choice = choices[0]
    kind = body.get("object") if isinstance(body, dict) else None
    # The field the body's own kind says a client shows: a chat body verified through a `text` it carries
    # beside a null message.content would show a client nothing, or something else, as verified.
    chat = kind == "chat.completion" or (kind is None and "message" in choice)
    if chat:
        message = choice.get("message")
        if "text" in choice or not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise MalformedProvenance("response body: a chat completion's choices[0] must hold its text in "
                                      "message.content (a string), and no `text` beside it")
        return str(message["content"])
    if kind in (None, "text_completion") and "message" not in choice and isinstance(choice.get("text"), str):
        return str(choice["text"])
    raise MalformedProvenance(f"response body: choices[0] of a {kind or 'response'} has no text where its kind "
                              "puts it (message.content for chat.completion, text for text_completion)")


def response_provenance(body: object) -> Provenance:
    """The statement at `tunegate.provenance` in a response body."""
    meta = body.get("tunegate") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or BODY_FIELD not in meta:
        raise MalformedProvenance("response body has no tunegate.provenance (not a tunegate gateway response?)")
    return parse_body(meta[BODY_FIELD])
