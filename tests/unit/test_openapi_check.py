"""The one check every gateway test's answers go through (tests/helpers/openapi_check.py):
it passes an answer the OpenAPI document describes and refuses one it does not, whichever
client received it."""

from __future__ import annotations

import json

import pytest
from openapi_core.exceptions import OpenAPIError

from tests.helpers.openapi_check import check

URL = "http://127.0.0.1:9402/api/store/publish"
JSON = {"Content-Type": "application/json; charset=utf-8"}
PENDING = {
    "status": "pending",
    "requestId": "5f0c6a4e-1b8e-4f51-9a43-2b3f0cbb3d71",
    "correlationId": "c-1",
}


def test_an_answer_the_document_describes_passes() -> None:
    headers = {**JSON, "Location": f"/api/store/publish/{PENDING['requestId']}"}
    check("POST", URL, 202, headers, json.dumps(PENDING).encode())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (418, PENDING),  # a status the route does not answer
        (202, {**PENDING, "status": "done"}),  # a value outside the schema
        (202, {"status": "pending", "correlationId": "c-1"}),  # a required field missing
        (200, {**PENDING, "extra": 1}),  # another answer's body
    ],
)
def test_an_answer_outside_the_document_is_refused(status: int, body: object) -> None:
    with pytest.raises(OpenAPIError):
        check("POST", URL, status, JSON, json.dumps(body).encode())
