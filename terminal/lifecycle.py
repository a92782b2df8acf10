"""Named steps run in a fixed order, each leaving how to undo it: how the App builds its parts,
starts them, and takes them down again.

A step that fails undoes what the steps before it did, newest first, so a terminal that cannot
start leaves no device open and no database locked. A known failure (a :class:`TerminalError`)
comes back as a :class:`StepError` that names the step, which is what an operator reads on the
console; anything else is a bug and keeps its type and traceback, with the step in a note.
Undoing goes on past a part that fails to close: one stuck device must not keep the store open.
"""

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from models.errors import TerminalError

logger = logging.getLogger(__name__)

Undo = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Step:
    """``run`` does the step and returns how to undo it (``None``: nothing to undo)."""

    name: str
    run: Callable[[], Undo | None]


class StepError(TerminalError):
    """A step failed for a known reason; ``__cause__`` is that reason."""

    def __init__(self, stage: str, step: str, cause: TerminalError) -> None:
        super().__init__(f"{stage} step {step!r}: {cause}")
        self.stage = stage
        self.step = step


class Steps:
    """The steps done so far at one stage (``build``, ``start``), newest last.

    The daemon's thread runs the steps while another (a test's, the demo's) may close the App,
    so what is done and undone is kept under a lock and every step is undone once.
    """

    def __init__(self, stage: str, undoing: str) -> None:
        self.stage = stage
        self.undoing = undoing
        self._done: list[tuple[str, Undo | None]] = []
        self._lock = threading.Lock()

    def run(self, steps: Iterable[Step]) -> None:
        """Run ``steps`` in order; when one fails, undo all that this stage did, and raise."""
        for step in steps:
            logger.debug("%s: %s", self.stage, step.name)
            try:
                undo = step.run()
            except TerminalError as exc:
                self.undo()
                raise StepError(self.stage, step.name, exc) from exc
            except BaseException as exc:
                exc.add_note(f"in the {self.stage} step {step.name!r}")
                self.undo()
                raise
            with self._lock:
                self._done.append((step.name, undo))

    def undo(self) -> None:
        """Undo what was done, newest first; a failure is logged and the rest still undone."""
        while True:
            with self._lock:
                if not self._done:
                    return
                name, undo = self._done.pop()
            logger.debug("%s: %s", self.undoing, name)
            if undo is None:
                continue
            try:
                undo()
            except Exception:
                logger.exception("%s %s failed", self.undoing, name)
