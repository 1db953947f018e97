"""Console test helpers: log in through the real form, read the CSRF token a page carries, and fill the
audit ledger with the events a FakeRuntime published (as the audit service would), signed at the end."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from services.audit.application import LedgerService, open_ledger
from shared.config import Settings
from shared.events.envelope import Envelope

HIDDEN = re.compile(r'name="(nonce|csrf)" value="([^"]+)"')


def hidden(html: str, name: str) -> str:
    values = dict(HIDDEN.findall(html))
    assert name in values, f"no hidden {name!r} field on the page"
    return values[name]


def login(client: TestClient, token: str, next_path: str = "/console/jobs") -> Any:
    """Log in as a browser does: fetch the form (it sets the login cookie), post it back with its nonce."""
    client.cookies.clear()
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"token": token, "nonce": hidden(form.text, "nonce"), "next": next_path},
        follow_redirects=False,
    )


def csrf_of(client: TestClient, path: str) -> str:
    return hidden(client.get(path).text, "csrf")


def fill_ledger(settings: Settings, events: list[Envelope]) -> LedgerService:
    ledger = open_ledger(settings)
    ledger.append(events)
    ledger.sign_now()
    return ledger
