"""The console's model-version pages: the list and a version's page as the API's readers see them, the AIBOM
viewed and downloaded, and approve / deploy / retire through forms (CSRF, roles and rules as in the API)."""

from __future__ import annotations

import hashlib

import pytest

from services.registry.aibom.canonical import aibom_bytes
from tests.registry.console_support import hidden, login
from tests.registry.registry_support import World
from tests.registry.test_model_versions import VERSION, registered

pytestmark = pytest.mark.anyio
PAGE = f"/console/models/{VERSION}"


async def test_version_pages_aibom_and_lifecycle_actions(world: World) -> None:
    job_approver = await registered(world, "ev-1")
    client = world.client
    login(client, world.principal("erin", "requester"))
    assert VERSION not in client.get("/console/models").text  # another principal's job: not listed
    assert client.get(PAGE).status_code == 403

    login(client, world.reader())
    page = client.get(PAGE)
    assert page.status_code == 200 and "candidate" in page.text and "passed" in page.text
    assert "Approve version" not in page.text and '<form method="post" action="/console/models' not in page.text
    download = client.get(f"{PAGE}/aibom.json")
    assert download.headers["content-disposition"] == f'attachment; filename="{VERSION}.aibom.cdx.json"'
    assert (
        hashlib.sha256(aibom_bytes(download.json())).hexdigest()
        == world.get(f"/models/{VERSION}").json()["aibom"]["sha256"]
    )
    assert "CycloneDX" in client.get(f"{PAGE}/aibom").text
    forbidden = client.post(f"{PAGE}/approval", data={"csrf": hidden(page.text, "csrf")})
    assert forbidden.status_code == 403 and "needs the &#39;approver&#39; role" in forbidden.text

    login(client, job_approver)
    page = client.get(PAGE)
    no_csrf = client.post(f"{PAGE}/approval", data={"comment": "ok"})
    assert no_csrf.status_code == 403 and world.get(f"/models/{VERSION}").json()["state"] == "candidate"
    approved = client.post(
        f"{PAGE}/approval",
        data={"comment": "metrics reviewed", "csrf": hidden(page.text, "csrf")},
        follow_redirects=False,
    )
    assert approved.status_code == 303 and world.get(f"/models/{VERSION}").json()["state"] == "approved"

    login(client, world.principal("dora", "deployer"))
    page = client.get(PAGE)
    assert "Deploy</button>" in page.text and "Approve version" not in page.text
    csrf = hidden(page.text, "csrf")
    bad_alias = client.post(f"{PAGE}/deployment", data={"alias": "Bad Alias", "tenants": "acme", "csrf": csrf})
    assert bad_alias.status_code == 422 and "alias" in bad_alias.text
    deployed = client.post(
        f"{PAGE}/deployment",
        data={"alias": "support-triage", "tenants": "acme, beta", "csrf": csrf},
        follow_redirects=False,
    )
    assert deployed.status_code == 303
    view = world.get(f"/models/{VERSION}").json()
    assert (view["state"], view["alias"], view["tenants"]) == ("deployed", "support-triage", ["acme", "beta"])
    assert world.runtime.of_type("model.deployed")[0].actor == "dora"
    retired = client.post(f"{PAGE}/retirement", data={"reason": "superseded", "csrf": csrf}, follow_redirects=False)
    assert retired.status_code == 303 and world.get(f"/models/{VERSION}").json()["state"] == "retired"
    again = client.post(f"{PAGE}/retirement", data={"reason": "twice", "csrf": csrf})
    assert again.status_code == 409 and "final state" in again.text
    assert client.get("/console/models/not-a-version").status_code == 404
