"""A table of UTF-8 text seen as bytes: how the stream stores its encoded slots and phases.

The stream's tables are plain faust Tables, not faust's windowed tables: a windowed table
keeps one value per (key, window range) and answers "the value at a time", while a sliding
rate needs the merge of every slot in the window, and a DDSketch is no value faust knows how
to add. So the slot arithmetic lives in `streams.rates`, and the tables only make it durable:
every write goes to a compacted changelog topic.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, cast


class TextTable(MutableMapping[str, bytes]):
    """A faust Table of UTF-8 text seen as bytes.

    faust picks a table's serializer from its value type, not its schema, and decodes the
    changelog with it on recovery: JSON text (our encodings) stored as `str` round-trips.
    """

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getitem__(self, key: str) -> bytes:
        return cast(str, self._table[key]).encode("utf-8")

    def __setitem__(self, key: str, value: bytes) -> None:
        self._table[key] = value.decode("utf-8")

    def __delitem__(self, key: str) -> None:
        del self._table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table.keys()))

    def __len__(self) -> int:
        return len(self._table)
