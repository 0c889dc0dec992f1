"""Which optional informers the scheduler starts: only a 404 from discovery means "not served"."""

from __future__ import annotations

from types import SimpleNamespace

from client import APIConnectionError, ApiError
from scheduler.app import served


def api_answering(result: object) -> SimpleNamespace:
    async def resources(api_version: str) -> dict:
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]
    return SimpleNamespace(discovery=SimpleNamespace(resources=resources))


async def test_only_not_found_means_not_served() -> None:
    assert await served(api_answering({"persistentvolumeclaims": object()}), "v1", "persistentvolumeclaims")
    assert not await served(api_answering({"pods": object()}), "v1", "persistentvolumeclaims")
    assert not await served(api_answering(ApiError(404, "NotFound", "no")), "policy/v1", "poddisruptionbudgets")
    # before the RBAC bootstrap policy exists discovery is forbidden: the informer must still start
    assert await served(api_answering(ApiError(403, "Forbidden", "no")), "v1", "persistentvolumeclaims")
    assert await served(api_answering(APIConnectionError("refused")), "v1", "persistentvolumeclaims")
