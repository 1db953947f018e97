"""The registry client puts every id in a request path as exactly one segment. A job id was interpolated
as given: `tunegate jobs cancel '../principals/alice/revoke?' --reason x` with an admin's token sent
`POST /principals/alice/revoke?/cancel` with a body PrincipalRevoke accepts, so "cancel a job" revoked a
principal."""

from __future__ import annotations

import httpx
import pytest

from services.registry.adapters.client import RegistryClient
from services.registry.schemas import CancelRequest, PrincipalRevoke
from shared.ids import UnsafeIdError


def recording_client() -> tuple[RegistryClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": "not_found", "detail": "nothing here"})

    http = httpx.Client(base_url="http://registry.test", transport=httpx.MockTransport(answer))
    return RegistryClient(http, "tg_token"), seen


@pytest.mark.parametrize("job_id", ["../principals/alice/revoke?", "..", "job_1/../../principals", "a?b", "j#x", ""])
def test_a_job_id_that_is_not_one_never_leaves_the_client(job_id: str) -> None:
    client, seen = recording_client()
    with pytest.raises(UnsafeIdError):
        client.cancel(job_id, CancelRequest(reason="x"))
    with pytest.raises(UnsafeIdError):
        client.get_job(job_id)
    assert seen == []


@pytest.mark.parametrize("name", ["../jobs/job_1", "alice/revoke?x=", "..", "a%2Fb"])
def test_other_ids_are_one_percent_encoded_segment(name: str) -> None:
    client, seen = recording_client()
    try:
        client.revoke_principal(name, PrincipalRevoke(reason="x"))
    except UnsafeIdError:
        assert name == ".." and seen == []
        return
    except Exception:  # the registry's 404, as the client reports it
        pass
    [request] = seen
    path = request.url.raw_path.decode()
    assert path.startswith("/principals/") and path.endswith("/revoke") and path.count("/") == 3, path
    assert "?" not in path
