"""A table of encoded partials (keyed "partition:slot", `streams.rates.partial_key`), each
decoded once per change.

Decoding a partial (JSON, base64, protobuf, a DDSketch rebuilt bin by bin) costs more than
folding a fetch into it at low rates, and more than merging it at an evaluation: both phases
keep the decoded value beside the bytes it came from, and decode again only when the table
holds other bytes for the key (a write of their own, or a recovery after a rebalance).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, MutableMapping

from streams.rates import Slot, parse_partial_key, partial_key


class Partials:
    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self._table = table
        self._decoded: dict[str, tuple[bytes, Slot]] = {}

    def get(self, key: str) -> Slot | None:
        encoded = self._table.get(key)
        if encoded is None:
            self._decoded.pop(key, None)
            return None
        cached = self._decoded.get(key)
        # Compared with the stored bytes, not trusted: a rebalance may have recovered the
        # table anew while this worker did not hold the key's partition.
        if cached is not None and cached[0] == encoded:
            return cached[1]
        value = Slot.decode(encoded)
        self._decoded[key] = (encoded, value)
        return value

    def put(self, key: str, encoded: bytes, value: Slot) -> None:
        self._table[key] = encoded
        self._decoded[key] = (encoded, value)

    def delete(self, key: str) -> None:
        del self._table[key]
        self._decoded.pop(key, None)

    def encoded(self, key: str) -> bytes:
        return self._table[key]

    def stored(self) -> list[str]:
        return list(self._table)

    def expire(self, first_live: int, partitions: Collection[int] | None = None) -> None:
        """Delete the partials of slots before `first_live`: those that left the window (of
        `partitions` only, when given)."""
        for key in self.stored():
            partition, slot = parse_partial_key(key)
            if slot < first_live and (partitions is None or partition in partitions):
                self.delete(key)

    def by_slot(self) -> Iterator[tuple[int, Slot]]:
        for key in self.stored():
            value = self.get(key)
            if value is not None:
                yield parse_partial_key(key)[1], value

    def of_partition(self, partition: int) -> Mapping[int, Slot]:
        return _PartitionSlots(self, partition)


class _PartitionSlots(Mapping[int, Slot]):
    """One source partition's partials, by slot."""

    def __init__(self, partials: Partials, partition: int) -> None:
        self._partials = partials
        self._partition = partition

    def __getitem__(self, slot: int) -> Slot:
        value = self._partials.get(partial_key(self._partition, slot))
        if value is None:
            raise KeyError(slot)
        return value

    def __iter__(self) -> Iterator[int]:
        for key in self._partials.stored():
            partition, slot = parse_partial_key(key)
            if partition == self._partition:
                yield slot

    def __len__(self) -> int:
        return sum(1 for _ in self)
