"""Console pages for the audit ledger: search entries, show one with its inclusion proof, show the consistency
proof between two signed tree heads, and let the browser check either proof itself (static/verify.js) against
the log's public key, so an auditor need not trust the registry that serves the page.

The ledger is read as `tunegate audit` reads it: the audit service's database on this host, read-only
(services/audit/application.py). Entries hold types, actors, subjects and hashes, never payloads."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from services.audit.adapters.keys import local_public_key_path
from services.audit.adapters.store import LedgerNotFound, LedgerStore
from services.audit.application import open_store
from services.audit.ledger_proofs import ProofUnavailable, build_consistency_proof, build_inclusion_proof
from services.registry.console.app import Console, Viewer
from services.registry.domain import access
from services.registry.domain.errors import InvalidRequest, NotFound
from shared.security.keys import PublicKeyError, load_public_key, public_key_pem

SEARCH_LIMIT = 100
HEADS_LISTED = 200
MAX_FIELD_CHARS = 200


class LedgerReader:
    """Opens the ledger on first use: the registry may start before the audit service has created it."""

    def __init__(self, console: Console) -> None:
        self.settings = console.runtime.settings
        self._store: LedgerStore | None = None

    def store(self) -> LedgerStore:
        if self._store is None:
            store = open_store(self.settings, create=False)
            try:
                store.require_schema()
            except LedgerNotFound as exc:
                store.db.dispose()
                raise NotFound(f"{exc}: has the audit service run on this host?") from None
            self._store = store
        return self._store

    def public_key_pem(self) -> str:
        path = local_public_key_path(self.settings)
        try:
            return public_key_pem(load_public_key(path.read_bytes()))
        except FileNotFoundError:
            raise NotFound(f"the audit log's public key {path} is not there: has the audit service run?") from None
        except (PublicKeyError, ValueError) as exc:
            raise NotFound(f"the audit log's public key {path} cannot be read: {exc}") from None


def _text(name: str, value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and len(value) > MAX_FIELD_CHARS:
        raise InvalidRequest(f"{name}: at most {MAX_FIELD_CHARS} characters")
    return value


def _moment(name: str, value: str | None) -> str | None:
    """A date or date-time as the ledger's occurred_at strings compare: UTC ISO 8601 (a date-time without a
    zone is taken as UTC; a bare date stays a date, a prefix of every moment of that day)."""
    value = _text(name, value)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: {value!r} is not an ISO 8601 date or date-time, e.g. 2026-01-05") from None
    if len(value) == len("2026-01-05"):
        return moment.date().isoformat()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:  # 9999-12-31T23:59-23:00 is past the year 9999 in UTC
        raise InvalidRequest(f"{name}: {value!r} is outside the years 1 to 9999 once in UTC") from None


def _size(name: str, value: str | None) -> int | None:
    value = _text(name, value)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # isdigit alone takes '²' and '①'
        raise InvalidRequest(f"{name}: {value!r} is not a tree size (a whole number)")
    return int(value)


def add_routes(app: FastAPI, console: Console) -> None:
    ledger = LedgerReader(console)
    reads_ledger = console.requires(access.READ_LEDGER, "reading the audit ledger")

    @app.get("/audit", response_class=HTMLResponse)
    def search(
        request: Request,
        subject: str | None = Query(default=None),
        type: str | None = Query(default=None),
        actor: str | None = Query(default=None),
        since: str | None = Query(default=None),
        until: str | None = Query(default=None),
        viewer: Viewer = reads_ledger,
    ) -> Response:
        filters = {
            "subject": _text("subject", subject),
            "type": _text("type", type),
            "actor": _text("actor", actor),
            "since": _moment("since", since),
            "until": _moment("until", until),
        }
        store = ledger.store()
        with store.read() as conn:
            entries = store.search(
                conn,
                subject=filters["subject"],
                type_=filters["type"],
                actor=filters["actor"],
                since=filters["since"],
                until=filters["until"],
                limit=SEARCH_LIMIT,
            )
            size, _ = store.head(conn)
            head = store.latest_head(conn)
        return console.page(
            request, "audit.html", viewer, entries=entries, filters=filters, size=size, head=head, limit=SEARCH_LIMIT
        )

    @app.get("/audit/public-key", response_class=PlainTextResponse)
    def public_key(viewer: Viewer = reads_ledger) -> Response:
        return PlainTextResponse(ledger.public_key_pem(), media_type="application/x-pem-file")

    @app.get("/audit/entries/{event_id}", response_class=HTMLResponse)
    def entry(request: Request, event_id: str, viewer: Viewer = reads_ledger) -> Response:
        event_id = _text("event id", event_id) or ""
        store = ledger.store()
        with store.read() as conn:
            found = store.entry_by_event_id(conn, event_id)
        if found is None:
            raise NotFound(f"event {event_id!r} is not in the audit ledger")
        key_pem = ledger.public_key_pem()
        try:
            proof = build_inclusion_proof(store, event_id, key_pem)
            pending = None
        except ProofUnavailable as exc:
            proof, pending = None, str(exc)
        return console.page(
            request,
            "entry.html",
            viewer,
            entry=found,
            key_pem=key_pem,
            pending=pending,
            proof_json=proof.model_dump_json(indent=2) if proof else None,
        )

    @app.get("/audit/consistency", response_class=HTMLResponse)
    def consistency(
        request: Request,
        old: str | None = Query(default=None),
        new: str | None = Query(default=None),
        viewer: Viewer = reads_ledger,
    ) -> Response:
        """Two signed tree heads (by default the two newest) and the RFC 9162 path between them."""
        old_size, new_size = _size("old", old), _size("new", new)
        store = ledger.store()
        with store.read() as conn:
            heads = store.all_heads(conn)
        sizes = {h.tree_size for h in heads}
        if new_size is None:
            new_size = heads[-1].tree_size if heads else None
        if old_size is None:
            earlier = [h.tree_size for h in heads if new_size is not None and h.tree_size < new_size]
            old_size = earlier[-1] if earlier else None
        # The lists offer the newest heads; an older signed size is still accepted from the query string.
        older = [h for h in heads[:-HEADS_LISTED] if h.tree_size in (old_size, new_size)]
        shown = sorted([*older, *heads[-HEADS_LISTED:]], key=lambda h: h.tree_size)
        context = {"heads": shown, "old": old_size, "new": new_size, "proof_json": None, "pending": None}
        if old_size is None or new_size is None:
            context["pending"] = "the log has signed fewer than two tree heads: nothing to compare yet"
        else:
            for name, size in (("old", old_size), ("new", new_size)):
                if size not in sizes:
                    raise InvalidRequest(f"{name}: the log signed no tree head of size {size} (newest signed: "
                                         f"{', '.join(str(h.tree_size) for h in heads[-10:]) or 'none'})")
            if old_size > new_size:
                raise InvalidRequest(f"old ({old_size}) must not be larger than new ({new_size})")
            key_pem = ledger.public_key_pem()
            try:
                proof = build_consistency_proof(store, old_size, new_size, key_pem)
            except ProofUnavailable as exc:
                raise InvalidRequest(str(exc)) from None
            context.update(proof_json=proof.model_dump_json(indent=2), key_pem=key_pem)
        return console.page(request, "consistency.html", viewer, **context)
