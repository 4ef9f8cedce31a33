"""Pictures from the log: a pool timeline and a run history, as one self-contained HTML page.

Pure: events in, HTML string out (:func:`render`). ``gip.cli.report`` reads the log and
writes, uploads or serves the page; local mode serves it at ``GET /report``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from gip.domain.envelope import Envelope
from gip.report.model import Model, build
from gip.report.page import page

__all__ = ["Model", "build", "render"]


def render(events: Iterable[Envelope], *, end: datetime, start: datetime | None = None, as_of: bool = False,
           drift: Sequence[str] | None = None, title: str = "github-issue-processor report") -> str:
    """The page for ``events`` (the log from its start, so that every stream folds), drawing
    ``[start, end]``. ``drift`` is what ``replay --verify`` found (None: not checked)."""
    with _no_gc():
        return page(build(events, start=start, end=end, as_of=as_of), drift=drift, title=title)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The fold keeps every event and run alive to the end: a cyclic collection in between
    finds nothing to free and costs about a third of the time at 100,000 events
    (``bench/report.py``). Collection is paused for the render only, and restored after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
