"""Progress lines for `cluster up`: one line per component with state and elapsed time.

On a TTY the lines are redrawn in place with a spinner; otherwise each change prints
one plain line (logs and CI stay readable).
"""

from __future__ import annotations

import time
from typing import TextIO

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.start = time.monotonic()
        self.lines: dict[str, tuple[str, str, float]] = {}  # name → (mark, text, t)
        self._drawn = 0
        self._tick = 0

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.start:5.1f}s"

    def _set(self, name: str, mark: str, text: str) -> None:
        old = self.lines.get(name)
        self.lines[name] = (mark, text, time.monotonic())
        if self.tty:
            self._redraw()
        elif old is None or old[:2] != (mark, text):
            self.out.write(f"[{self._elapsed()}] {name:<18} {text}\n")
            self.out.flush()

    def _redraw(self) -> None:
        self._tick += 1
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")
        for name, (mark, text, _) in self.lines.items():
            if mark == "…":
                mark = SPINNER[self._tick % len(SPINNER)]
            self.out.write(f"\x1b[2K {mark} {name:<18} {text}\n")
        self._drawn = len(self.lines)
        self.out.flush()

    def step(self, name: str, text: str) -> None:
        self._set(name, "…", text)

    def update(self, name: str, text: str) -> None:
        self._set(name, "…", f"{text} [{self._elapsed().strip()}]" if self.tty else text)

    def done(self, name: str, text: str) -> None:
        self._set(name, "✓", f"{text} [{self._elapsed().strip()}]")

    def fail(self, name: str, text: str) -> None:
        self._set(name, "✗", text)

    def finish(self, text: str) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()
