"""The one progress-bar helper. Library code reports progress through a callback;
only the CLI decides whether a bar is drawn (never when ``--json`` or not a TTY)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress_callback(description: str, enabled: bool = True) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """Return ``(update(done, total), close())`` drawing a tqdm bar on stderr when enabled."""
    if not enabled or not sys.stderr.isatty():
        return (lambda done, total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="clip", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def phased_progress(enabled: bool = True) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """Like :func:`progress_callback`, for work in named phases: ``update(phase, done, total)``."""
    state: dict = {"name": None, "update": None, "close": None}

    def update(name: str, done: int, total: int) -> None:
        if name != state["name"]:
            if state["close"]:
                state["close"]()
            state["update"], state["close"] = progress_callback(name, enabled)
            state["name"] = name
        state["update"](done, total)

    def close() -> None:
        if state["close"]:
            state["close"]()

    return update, close
