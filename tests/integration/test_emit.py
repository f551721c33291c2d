"""`store-publish emit`: from a JSON-lines file or stdin, or synthetic; signed when configured."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from schemas.settings import Settings
from schemas.signing import sign
from tests.helpers.cli import Ran, store_publish
from tests.helpers.support import read_topic, request_body, seed_creator


def _emit(settings: Settings, *args: str, stdin: str | None = None) -> Ran:
    return store_publish(
        settings, "emit", *args, stdin=stdin, timeout=120, EVENT_SIGNING_SECRET="emit-secret"
    )


async def test_emit_sends_file_and_stdin_lines_keyed_by_store_and_signed(
    settings: Settings, tmp_path: Path
) -> None:
    bodies = [request_body() for _ in range(3)]
    lines = [json.dumps(b) for b in bodies]
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines[:2]) + "\n\n", encoding="utf-8")
    from_file = _emit(settings, str(source))
    from_stdin = _emit(settings, "-", stdin=lines[2] + "\n")
    assert from_file.code == 0, from_file.err
    assert from_stdin.code == 0, from_stdin.err
    assert "sent 2 request(s)" in from_file.out
    records = await read_topic(settings, settings.topic_requests, expect=3)
    assert sorted(r.value for r in records) == sorted(line.encode() for line in lines)
    for record in records:
        body = json.loads(record.value or b"")
        assert record.key == body["store_id"].encode()
        assert (
            dict(record.headers)["signature"] == sign(record.value or b"", b"emit-secret").encode()
        )


async def test_emit_synthetic_sends_the_count_for_stores_in_the_database(
    settings: Settings, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        creators = {(c.user_id, c.store_id) for c in [await seed_creator(conn) for _ in range(5)]}
    finally:
        await conn.close()
    done = _emit(settings, "--synthetic", "40", "--rate", "400")
    assert done.code == 0, done.err
    records = await read_topic(settings, settings.topic_requests, expect=40)
    assert len(records) == 40
    for record in records:
        body = json.loads(record.value or b"")
        assert body["confirm_publish"] is True
        assert (body["user_id"], body["store_id"]) in {(str(u), str(s)) for u, s in creators}


def test_emit_without_a_source_or_a_count_is_refused(settings: Settings) -> None:
    refused = _emit(settings)
    assert refused.code == 2
    assert "either a SOURCE" in refused.err
