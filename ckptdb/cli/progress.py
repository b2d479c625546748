"""The one progress display of every command: drawn on stderr when it is a terminal (and the
command is not `--quiet`), nothing at all otherwise, so stdout and redirected output stay clean.

The library reports progress through callbacks in three shapes, and `Progress` has one feed for
each: `total`/`advance` (copy: a count, then increments), `phase` (import and export: a phase
name with done/total, drawn with a files/s rate) and `counter` (prune: a `\\r` line of done/total).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import click


def progress_shown(quiet: bool = False) -> bool:
    """Whether a command draws progress: not asked to be quiet, and stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


class Progress:
    """Progress on stderr; every feed is a no-op when disabled. Use as a context manager (or call
    `close`) so the bar's last line is finished even when the command fails."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._phase: str | None = None
        self._started = time.monotonic()
        self._shown = 0
        self._counting = False

    @classmethod
    def for_command(cls, quiet: bool = False) -> Progress:
        return cls(progress_shown(quiet))

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- a count, then increments (copy) -------------------------------------------------------------

    def total(self, count: int, label: str = "copying") -> None:
        if self.enabled:
            self._finish()
            self._bar = click.progressbar(
                length=count, label=label, file=sys.stderr, show_pos=True, show_eta=True
            )
            self._bar.__enter__()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    # -- named phases with done/total and a rate (import, export) ------------------------------------

    def phase(self, name: str, done: int, total: int, unit: str = "files") -> None:
        if not self.enabled:
            return
        if name != self._phase:
            self._finish()
            self._phase, self._started, self._shown = name, time.monotonic(), 0
            self._bar = click.progressbar(
                length=max(total, 1),
                label=name.capitalize(),
                file=sys.stderr,
                show_eta=True,
                show_pos=True,
                item_show_func=lambda rate: rate,
            )
            self._bar.render_progress()
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._bar.update(done - self._shown, f"{done / elapsed:,.0f} {unit}/s")
        self._shown = done

    # -- one `\r` line of done/total (prune) ---------------------------------------------------------

    def counter(self, label: str, total: int) -> Callable[[int], None] | None:
        """A callback redrawing `label: done / total`, or None when disabled (the library then
        skips the calls)."""
        if not self.enabled:
            return None

        def show(done: int) -> None:
            self._counting = True
            sys.stderr.write(f"\r{label}: {done:,} / {total:,}")
            sys.stderr.flush()

        return show

    def close(self) -> None:
        self._finish()
        if self._counting:
            sys.stderr.write("\n")
            self._counting = False

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None
