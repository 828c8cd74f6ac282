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


class UnitShares:
    """One bar's worth of progress for units of work that run side by side, each in named phases.

    ``update(label, phase, done, total)`` as a unit reports (``phase`` None: the unit finished); a unit's
    done share never decreases: its first phase (training, fine-tuning) counts for 85 % of it, each later
    one (evaluation, profiles, exports) for half of what is left. ``percent()`` is ``(done, total)`` in
    hundredths of a unit, for a ``progress(name, done, total)`` callback."""

    def __init__(self, labels: list[str]) -> None:
        self.state = {label: 0.0 for label in labels}
        self.phases: dict[str, list[str]] = {label: [] for label in labels}

    def update(self, label: str, phase: str | None, done: int, total: int) -> None:
        self.state[label] = self._share(label, phase, min(done / max(total, 1), 1.0))

    def _share(self, label: str, phase: str | None, fraction: float) -> float:
        if phase is None:
            return 1.0
        seen = self.phases[label]
        if not seen or seen[-1] != phase:
            seen.append(phase)
        if len(seen) == 1:
            return 0.85 * fraction
        left = 0.15 * 0.5 ** (len(seen) - 2)
        return max(self.state[label], 1.0 - left + 0.5 * left * fraction)

    def percent(self) -> tuple[int, int]:
        return round(100 * sum(self.state.values())), 100 * len(self.state)
