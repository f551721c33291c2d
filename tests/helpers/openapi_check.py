"""Every answer the gateway's tests get, validated against the committed OpenAPI document by
openapi-core: an answer outside the document fails the test that received it. One check,
whichever client got the answer (aiohttp here, curl in the guide's test)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from urllib.parse import urlsplit

import aiohttp
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from ops.gateway.openapi import OPENAPI_PATH


@cache
def described() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(OPENAPI_PATH.read_text(encoding="utf-8")))


def check(method: str, url: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raises (openapi-core's error, naming what differs) unless the document describes this
    answer to `method url`."""
    where = urlsplit(url)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    described().validate_response(
        MockRequest(f"{where.scheme}://{where.netloc}", method.lower(), where.path),
        MockResponse(
            body,
            status_code=status,
            headers=dict(headers),
            # openapi-core matches the media type alone, as aiohttp's content_type gives it.
            content_type=content_type.split(";")[0].strip(),
        ),
    )


async def check_answer(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client middleware: the answer, once openapi-core found it in the document."""
    response = await handler(request)
    body = await response.read()
    check(request.method, str(request.url), response.status, response.headers, body)
    return response


def checked_session() -> aiohttp.ClientSession:
    """A client session whose every answer is checked against the gateway's description."""
    return aiohttp.ClientSession(middlewares=(check_answer,))
