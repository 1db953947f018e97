"""Tree heads as C2SP checkpoints (https://c2sp.org/tlog-checkpoint) in signed notes
(https://c2sp.org/signed-note), with Ed25519 witness cosignatures (https://c2sp.org/tlog-cosignature), so
transparency-log tooling that tunegate did not write (Go's golang.org/x/mod/sumdb/note, witnesses) reads them.

    <origin>\\n<tree size>\\n<base64 root hash>\\n          the checkpoint, i.e. the note text
    \\n                                                 one blank line
    — <key name> <base64(key id || signature)>\\n       one line per signature

key id = SHA-256(key name || 0x0A || type || 32-byte public key)[:4], type 0x01 for the log's Ed25519
signature over the note text, 0x04 for a witness's timestamped cosignature over
"cosignature/v1\\ntime <unix seconds>\\n" || note text (its signature is 8-byte big-endian time || Ed25519).
A verifier key is written `<name>+<key id, 8 hex>+<base64(type || public key)>`.

Pure: no I/O; signing is a callable handed in by the caller."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.security.keys import key_id_for, public_key_raw

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
SIGNATURE_TYPES = {ED25519: "Ed25519", COSIGNATURE_V1: "Ed25519 cosignature/v1"}
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100
ORIGIN_PREFIX = "tunegate.local/audit/"

_EM_DASH_PREFIX = "\u2014 "
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")

Sign = Callable[[bytes], bytes]


class NoteError(ValueError):
    """A signed note, checkpoint or verifier key that cannot be accepted; the message says what and why."""


def log_origin(log_key: Ed25519PublicKey) -> str:
    """The checkpoint origin (and key name) of the ledger signed by `log_key`: unique per log key."""
    return f"{ORIGIN_PREFIX}{key_id_for(log_key)}"


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode spaces, no '+', no control characters (signed-note rules)."""
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 for c in name)


def key_id(name: str, signature_type: int, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key_raw(public_key)).digest()[:4]


def cosignature_message(note_text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + note_text


# ---------------------------------------------------------------------------------------------- verifier keys


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted (name, signature type, public key): the log's key or a witness's."""

    name: str
    signature_type: int
    public_key: Ed25519PublicKey = field(compare=False)
    raw_key: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"key name {self.name!r} is empty or holds a space, '+' or a control character")
        if self.signature_type not in SIGNATURE_TYPES:
            raise NoteError(f"signature type 0x{self.signature_type:02x} is not supported (0x01, 0x04)")
        object.__setattr__(self, "raw_key", public_key_raw(self.public_key))

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.signature_type, self.public_key)

    def encode(self) -> str:
        material = base64.b64encode(bytes([self.signature_type]) + self.raw_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Parse `<name>+<8 hex>+<base64(type || key)>`; the key id must match the rest."""
        text = vkey.strip()
        if len(text) > 1000:
            raise NoteError(f"verifier key is {len(text)} characters, at most 1000")
        # Split at the first two '+' only: standard base64 key material may itself hold '+'.
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {text[:80]!r}: expected <name>+<key id>+<base64 key>")
        name, hash_hex, material_b64 = parts
        if not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
            raise NoteError(f"verifier key {name!r}: key id {hash_hex!r} is not 8 lowercase hex digits")
        try:
            material = base64.b64decode(material_b64, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError(f"verifier key {name!r}: key material is not base64") from None
        if len(material) != 33:
            raise NoteError(f"verifier key {name!r}: expected a type byte and 32 key bytes, got {len(material)} bytes")
        verifier = cls(name, material[0], Ed25519PublicKey.from_public_bytes(material[1:]))
        if verifier.key_id.hex() != hash_hex:
            raise NoteError(f"verifier key {name!r}: key id {hash_hex} does not match the name and key")
        return verifier

    def verify(self, text: bytes, signature: bytes) -> int | None:
        """Check one signature over the note text: the cosignature time (0 for a log signature) when it
        verifies, None when it does not."""
        try:
            if self.signature_type == ED25519:
                if len(signature) != 64:
                    return None
                self.public_key.verify(signature, text)
                return 0
            if len(signature) != 72:
                return None
            (timestamp,) = struct.unpack(">Q", signature[:8])
            if timestamp >= 2**63:
                return None
            self.public_key.verify(signature[8:], cosignature_message(text, timestamp))
            return timestamp
        except InvalidSignature:
            return None


# ---------------------------------------------------------------------------------------------- signed notes


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_EM_DASH_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode('ascii')}\n"


@dataclass(frozen=True)
class SignedNote:
    text: bytes
    signatures: tuple[NoteSignature, ...]

    def render(self) -> bytes:
        return self.text + b"\n" + "".join(s.line() for s in self.signatures).encode()

    def with_signature(self, signature: NoteSignature) -> SignedNote:
        """The note with one more signature; an earlier signature by the same key is replaced."""
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) != (signature.name, signature.key_id))
        return SignedNote(self.text, (*kept, signature))

    @classmethod
    def parse(cls, data: bytes) -> SignedNote:
        if len(data) > MAX_NOTE_BYTES:
            raise NoteError(f"signed note is {len(data)} bytes, at most {MAX_NOTE_BYTES}")
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"signed note is not UTF-8 (byte {exc.start})") from None
        bad = next((i for i, c in enumerate(decoded) if ord(c) < 0x20 and c != "\n"), None)
        if bad is not None:
            raise NoteError(f"signed note holds control character 0x{ord(decoded[bad]):02x} at character {bad}")
        split = data.rfind(b"\n\n")
        if split < 0:
            raise NoteError("signed note has no blank line between its text and its signatures")
        text, block = data[: split + 1], data[split + 2 :]
        if not block or not block.endswith(b"\n"):
            raise NoteError("signed note has no signature lines, or its last line does not end in a newline")
        signatures: list[NoteSignature] = []
        for number, raw_line in enumerate(block[:-1].split(b"\n"), start=1):
            line = raw_line.decode("utf-8")
            if not line.startswith(_EM_DASH_PREFIX):
                raise NoteError(f"signature line {number} does not start with an em dash and a space")
            name, _, encoded = line[len(_EM_DASH_PREFIX) :].partition(" ")
            try:
                blob = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                blob = b""
            # Canonical base64 only, so one signature has one spelling (no stray bits in the last character).
            if base64.b64encode(blob).decode("ascii") != encoded:
                blob = b""
            if not is_valid_key_name(name) or len(blob) < 5:
                raise NoteError(f"signature line {number} ({name!r}): malformed name or signature")
            signatures.append(NoteSignature(name, blob[:4], blob[4:]))
            if len(signatures) > MAX_SIGNATURES:
                raise NoteError(f"signed note has more than {MAX_SIGNATURES} signatures")
        return cls(text, tuple(signatures))


@dataclass(frozen=True)
class VerifiedSignature:
    verifier: NoteVerifier
    timestamp: int


def verified_signatures(note: SignedNote, known: Iterable[NoteVerifier]) -> list[VerifiedSignature]:
    """Signatures by known keys, each key counted once. Unknown keys are ignored; a known key whose
    signature fails rejects the whole note (signed-note rules)."""
    by_id = {(v.name, v.key_id): v for v in known}
    found: dict[tuple[str, bytes], VerifiedSignature] = {}
    for signature in note.signatures:
        verifier = by_id.get((signature.name, signature.key_id))
        if verifier is None or (signature.name, signature.key_id) in found:
            continue
        timestamp = verifier.verify(note.text, signature.signature)
        if timestamp is None:
            kind = SIGNATURE_TYPES[verifier.signature_type]
            raise NoteError(f"{kind} signature by {verifier.name}+{verifier.key_id.hex()} does not verify")
        found[(signature.name, signature.key_id)] = VerifiedSignature(verifier, timestamp)
    return list(found.values())


def sign_note(text: bytes, name: str, signature_type: int, public_key: Ed25519PublicKey, sign: Sign,
              timestamp: int = 0) -> NoteSignature:  # fmt: skip
    """One signature line over `text`: the log's (type 0x01) or a witness's cosignature (0x04, at `timestamp`)."""
    verifier = NoteVerifier(name, signature_type, public_key)
    if signature_type == ED25519:
        return NoteSignature(name, verifier.key_id, sign(text))
    if not 0 <= timestamp < 2**63:
        raise NoteError(f"cosignature time {timestamp} is out of range")
    signature = sign(cosignature_message(text, timestamp))
    return NoteSignature(name, verifier.key_id, struct.pack(">Q", timestamp) + signature)


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise NoteError(f"checkpoint origin {self.origin!r} is empty or holds a control character")
        if not 0 <= self.tree_size < 2**63:
            raise NoteError(f"checkpoint tree size {self.tree_size} is out of range")
        if len(self.root_hash) != 32:
            raise NoteError(f"checkpoint root hash is {len(self.root_hash)} bytes, expected 32")

    def text(self) -> bytes:
        return f"{self.origin}\n{self.tree_size}\n{base64.b64encode(self.root_hash).decode('ascii')}\n".encode()

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """The first three lines of a note text; extension lines are allowed and ignored."""
        lines = text.decode("utf-8").split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
            raise NoteError("checkpoint text must be at least three non-empty lines, each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if not _SIZE.fullmatch(size):
            raise NoteError(f"checkpoint tree size {size[:40]!r} is not a decimal without leading zeros")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError(f"checkpoint root hash {root[:60]!r} is not base64") from None
        if base64.b64encode(root_hash).decode("ascii") != root:
            raise NoteError(f"checkpoint root hash {root[:60]!r} is not canonical base64")
        return cls(origin, int(size), root_hash)


def log_verifier(log_key: Ed25519PublicKey) -> NoteVerifier:
    """The verifier key of the ledger's checkpoints: named after the log's origin."""
    return NoteVerifier(log_origin(log_key), ED25519, log_key)


def witness_verifier(name: str, witness_key: Ed25519PublicKey) -> NoteVerifier:
    return NoteVerifier(name, COSIGNATURE_V1, witness_key)


@dataclass(frozen=True)
class CheckedCheckpoint:
    checkpoint: Checkpoint
    note: SignedNote
    cosigned_by: tuple[str, ...]


def open_checkpoint(
    data: bytes,
    log: NoteVerifier,
    witnesses: Sequence[NoteVerifier] = (),
    required_cosignatures: int = 0,
) -> CheckedCheckpoint:
    """Parse a signed checkpoint and check it: signed by the log (its origin names the log), and cosigned by at
    least `required_cosignatures` distinct witnesses among `witnesses`. Raises NoteError saying what fails."""
    if log.signature_type != ED25519:
        raise NoteError(f"log verifier key {log.name} is a witness key (type 0x04), expected type 0x01")
    if any(w.signature_type != COSIGNATURE_V1 for w in witnesses):
        raise NoteError("a witness verifier key is not a cosignature key (type 0x04)")
    if required_cosignatures > len({(w.name, w.key_id) for w in witnesses}):
        raise NoteError(f"{required_cosignatures} cosignatures required but only {len(witnesses)} witness keys given")
    note = SignedNote.parse(data)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != log.name:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, not {log.name!r}")
    verified = verified_signatures(note, [log, *witnesses])
    if not any(v.verifier == log for v in verified):
        raise NoteError(f"checkpoint carries no signature by the log key {log.name}+{log.key_id.hex()}")
    cosigners = tuple(sorted(v.verifier.name for v in verified if v.verifier != log))
    if len(cosigners) < required_cosignatures:
        raise NoteError(
            f"checkpoint has {len(cosigners)} valid cosignature(s) from the given witnesses"
            f" ({', '.join(cosigners) or 'none'}), {required_cosignatures} required"
        )
    return CheckedCheckpoint(checkpoint, note, cosigners)
