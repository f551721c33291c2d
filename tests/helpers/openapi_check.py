"""Every answer the gateway's tests get, validated against the committed OpenAPI document by
openapi-core: an answer outside the document fails the test that received it."""

from __future__ import annotations

import json
from functools import cache
from urllib.parse import urlsplit

import aiohttp
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from ops.gateway.openapi import OPENAPI_PATH


@cache
def described() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(OPENAPI_PATH.read_text(encoding="utf-8")))


async def check_answer(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client middleware: the answer, once openapi-core found it in the document."""
    response = await handler(request)
    body = await response.read()
    url = urlsplit(str(request.url))
    described().validate_response(
        MockRequest(f"{url.scheme}://{url.netloc}", request.method.lower(), url.path),
        MockResponse(
            body,
            status_code=response.status,
            headers=dict(response.headers),
            content_type=response.content_type,
        ),
    )
    return response


def checked_session() -> aiohttp.ClientSession:
    """A client session whose every answer is checked against the gateway's description."""
    return aiohttp.ClientSession(middlewares=(check_answer,))
