"""Where the consumer's writer places records: where a keyed send of the Java client would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.kafka_io import partition_for, place
from consumers.outcomes import OutboundRecord

# murmur2 of these keys, from Apache Kafka's own UtilsTest (signed 32-bit).
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482, b"abc": 479470107}


def test_keyed_records_land_on_the_java_clients_partition_in_order() -> None:
    keys = [b"21", b"foobar", b"abc", b"21", b"abc"]
    records = [OutboundRecord("outcomes", key, str(i).encode()) for i, key in enumerate(keys)]
    placed = place(records, {"outcomes": list(range(7))})
    where = {r.value: group.tp.partition for group in placed for r in group.records}
    for i, key in enumerate(keys):
        assert where[str(i).encode()] == (JAVA_MURMUR2[key] & 0x7FFFFFFF) % 7
    # Records of one partition keep the order they were given in.
    for group in placed:
        values = [int(r.value or b"") for r in group.records]
        assert values == sorted(values)
    assert sum(len(group.records) for group in placed) == len(records)


def test_records_of_several_topics_are_placed_per_topic() -> None:
    records = [OutboundRecord("outcomes", b"abc", b"o"), OutboundRecord("dlq", b"abc", b"d")]
    placed = place(records, {"outcomes": [0, 1, 2], "dlq": [0]})
    assert {(g.tp.topic, g.tp.partition) for g in placed} == {
        ("outcomes", (479470107 & 0x7FFFFFFF) % 3),
        ("dlq", 0),
    }


@settings(max_examples=500)
@given(key=st.binary(max_size=200), count=st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_aiokafkas_own_partitioner_sends_it(key: bytes, count: int) -> None:
    # Anyone producing with aiokafka's keyed send (the gateway, tools, a replay) and this
    # writer must agree, or a store's outcomes would split across partitions.
    every = list(range(count))
    assert partition_for(key, every) == DefaultPartitioner()(key, every, every)


def test_an_unkeyed_record_goes_to_one_of_the_partitions() -> None:
    assert {partition_for(None, [3, 5]) for _ in range(200)} == {3, 5}
