"""Tables that fit the terminal they are printed in, as `kubectl get` does.

Every row stays on one line: ids are shortened to the shortest prefix still unique in the
table, long text is cut with an ellipsis, and when even that is too wide the least needed
columns are dropped. A header is never narrower than its word. `wide` keeps every column
and every id whole, for whoever asked with `--wide`; `--json` has the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# An id is never cut shorter than this, so a shortened one is still worth searching for.
ID_MIN_CHARS = 8
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """One column. `keep` orders dropping: the highest goes first; 0 is never dropped.

    `kind`: `fixed` is shown whole, `id` is shortened to a unique prefix, `text` takes the
    room left and is cut (at most `longest` cells, at least `shortest` when it is shown).
    """

    header: str
    keep: int = 0
    kind: Literal["fixed", "id", "text"] = "fixed"
    right: bool = False
    shortest: int = 12
    longest: int = 120


@dataclass(frozen=True)
class Fitted:
    renderable: RenderableType
    width: int  # the cells its widest line takes
    headers: tuple[str, ...]  # the columns shown, in order


def one_line(text: str) -> str:
    """Untrusted text on one line: control characters (newlines included) escaped."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def cut(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, max(width - 1, 0)) + ELLIPSIS


def unique_prefix_length(values: Sequence[str], minimum: int = ID_MIN_CHARS) -> int:
    """The shortest length >= `minimum` at which distinct values have distinct prefixes."""
    distinct = set(values)
    longest = max((len(value) for value in distinct), default=0)
    for length in range(minimum, longest + 1):
        if len({value[:length] for value in distinct}) == len(distinct):
            return length
    return max(longest, minimum)


def shorten_ids(values: Sequence[str]) -> list[str]:
    length = unique_prefix_length(values)
    return [value if len(value) <= length else value[:length] + ELLIPSIS for value in values]


def overhead(columns: int) -> int:
    # rich's default box: a border before each column and one after the last, padding 1 each side.
    return 3 * columns + 1


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    wide: bool = False,
    title: str | None = None,
) -> Fitted:
    """The table laid out for `width` cells (or whole, when `wide`), one line per row."""
    cells = [[one_line(cell) for cell in row] for row in rows]
    for index, column in enumerate(columns):
        if column.kind == "id" and not wide:
            shortened = shorten_ids([row[index] for row in cells])
            for row, value in zip(cells, shortened, strict=True):
                row[index] = value

    def natural(index: int) -> int:
        column = columns[index]
        found = max([cell_len(column.header)] + [cell_len(row[index]) for row in cells])
        return min(found, max(column.longest, cell_len(column.header)))

    def narrowest(index: int) -> int:
        column = columns[index]
        if column.kind != "text":
            return natural(index)
        return min(natural(index), max(column.shortest, cell_len(column.header)))

    shown = list(range(len(columns)))
    if not wide:
        while sum(narrowest(i) for i in shown) + overhead(len(shown)) > width:
            droppable = [i for i in shown if columns[i].keep > 0]
            if not droppable:
                break
            shown.remove(max(droppable, key=lambda i: (columns[i].keep, i)))
    widths = {i: narrowest(i) for i in shown}
    room = width - overhead(len(shown)) - sum(widths.values())
    for i in shown:
        if wide or columns[i].kind == "text":
            grow = natural(i) - widths[i] if wide else min(natural(i) - widths[i], max(room, 0))
            widths[i] += grow
            room -= grow

    table = Table(show_header=True, pad_edge=True)
    for i in shown:
        table.add_column(
            columns[i].header,
            width=widths[i],
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if columns[i].right else "left",
        )
    for row in cells:
        table.add_row(*(Text(cut(row[i], widths[i])) for i in shown))
    total = sum(widths.values()) + overhead(len(shown))
    headers = tuple(columns[i].header for i in shown)
    if title is None:
        return Fitted(table, total, headers)
    heading = Text(title if wide else cut(one_line(title), width), no_wrap=True)
    return Fitted(Group(heading, table), max(total, cell_len(title)), headers)


def show(console: Console, fitted: Fitted, *, wide: bool = False) -> None:
    """Print a fitted table; a wide one is not cropped to the terminal (it asked for it all)."""
    if not (wide and fitted.width > console.width):
        console.print(fitted.renderable)
        return
    # rich caps a print's width at the console's, so the console is widened for this one.
    narrow = console.width
    console.width = fitted.width
    try:
        console.print(fitted.renderable, crop=False)
    finally:
        console.width = narrow
