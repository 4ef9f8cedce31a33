"""Pure rendering for the operator CLI: aligned text tables and JSON lines.

Nothing here prints; every function returns text (or yields lines) so tests compare values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

Column = tuple[str, str]  # (header, key in the row mapping)


def cell(value: Any, *, width: int | None = None) -> str:
    """One table cell: None → '-', containers → compact JSON, newlines flattened, clipped."""
    if value is None or value == "":
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    else:
        text = str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    return text if width is None else clip(text, width)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with an ellipsis (the one way we cut)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    max_width: Mapping[str, int] | None = None,
) -> list[str]:
    """Aligned lines: a header, a rule, then one line per row. Last column is not padded."""
    limits = dict(max_width or {})
    body = [[cell(row.get(key), width=limits.get(key)) for _, key in columns] for row in rows]
    headers = [header for header, _ in columns]
    widths = [len(h) for h in headers]
    for line in body:
        widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(line) for line in body)]


def key_values(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    """``key: value`` lines with the colons aligned (for summaries like ``status``)."""
    if not pairs:
        return []
    width = max(len(k) for k, _ in pairs)
    return [f"{(k + ':').ljust(width + 1)} {cell(v)}" for k, v in pairs]


def jsonl(items: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One compact JSON object per line, spelled like the store's canonical ``body``."""
    for item in items:
        yield json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


FORMATS = ("table", "json", "jsonl")
FORMAT_HELP = "table (aligned text), json (one document) or jsonl (one object per line)"


def add_format(parser: Any, *, default: str | None = "table", help: str = FORMAT_HELP) -> None:
    """The one ``--format`` every printing command takes (the same three names everywhere)."""
    parser.add_argument("--format", choices=FORMATS, default=default, help=help)


def structured(fmt: str, document: Any, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """``json``: the document, indented; ``jsonl``: each record on its own line."""
    if fmt == "jsonl":
        return list(jsonl(records))
    return [json.dumps(document, indent=2, sort_keys=True, default=str)]
