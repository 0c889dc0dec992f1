"""OpenAPI v2 and v3 documents for every served kind (filled in by the schema module)."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from apiserver.resources import ResourceTable


def _not_found() -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}
    return Response(orjson.dumps(body), status_code=404, media_type="application/json")


class OpenAPI:
    def __init__(self, table: ResourceTable) -> None:
        self.table = table

    def v2(self, accept: str) -> Response:
        return _not_found()

    def v3_root(self) -> Response:
        return _not_found()

    def v3(self, path: str) -> Response:
        return _not_found()
