"""The gateway takes the body the original endpoint took: optional JSON, strictly
`{"confirmPublish"?: bool, "notifyCustomers"?: bool}`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.gateway.body import Invalid, PublishBody, Unreadable, parse_body


def test_an_empty_body_asks_nothing() -> None:
    assert parse_body(b"") == PublishBody()
    assert parse_body(b"  \n") == PublishBody()


def test_both_fields_are_read_by_their_wire_names() -> None:
    body = parse_body(b'{"confirmPublish": true, "notifyCustomers": true}')
    assert isinstance(body, PublishBody)
    assert body.confirm_publish
    assert body.notify_customers


def test_unknown_fields_are_refused_by_name() -> None:
    body = parse_body(b'{"confirmPublish": true, "storeId": "x"}')
    assert isinstance(body, Invalid)
    assert body.details[0]["path"] == ["storeId"]


@pytest.mark.parametrize("value", [b'"true"', b"1", b"null", b"[]"])
def test_only_booleans_are_booleans(value: bytes) -> None:
    assert isinstance(parse_body(b'{"confirmPublish": ' + value + b"}"), Invalid)


@pytest.mark.parametrize("raw", [b"[]", b"true", b'"x"', b"3"])
def test_json_that_is_not_an_object_is_an_invalid_body(raw: bytes) -> None:
    assert isinstance(parse_body(raw), Invalid)


@pytest.mark.parametrize("raw", [b"{", b"confirmPublish=true", b"\xff\xfe", b"[" * 100_000])
def test_what_is_not_json_is_unreadable(raw: bytes) -> None:
    assert isinstance(parse_body(raw), Unreadable)


@given(st.binary(max_size=256))
def test_any_bytes_give_one_of_the_three_answers(raw: bytes) -> None:
    assert isinstance(parse_body(raw), PublishBody | Unreadable | Invalid)
