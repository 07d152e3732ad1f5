"""Everything the ``modelway`` command writes to a terminal, through one library (``rich``).

Two modes:
  * for people (the default): results as tables or pretty JSON on stdout, errors on stderr,
    and progress bars on stderr while long work runs (what is happening, counts, ETA). Colour,
    bars and spinners only where the stream is a terminal (and ``NO_COLOR`` is unset): piped,
    the same results come out as plain text and no progress is drawn.
  * ``--json`` (any command): stdout holds exactly one JSON document, the result (a table's
    rows as a list of objects); an error is one JSON object ``{"error", "code"}`` on stderr;
    no progress, no colour. For scripts.

Exit statuses (also in the README): 0 done; 1 refused or failed (the error says why; ``batch
submit``: the job failed); 2 bad usage; 3 and up, ``modelway package`` refusals (one per
kind, ``model_build.exceptions``); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as Bars
    from rich.progress import TaskID

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Mode:
    json = False


mode = _Mode()


def set_json(enabled: bool) -> None:
    mode.json = enabled


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # highlight off: rich would colour numbers and paths inside plain messages.
    # soft_wrap: a long line (a key, a path) is written whole, never broken at the width.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    """A command's result: indented JSON, coloured on a terminal."""
    text = json.dumps(value, indent=2, default=str)
    console = _console()
    if console.is_terminal and not mode.json:
        console.print_json(text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Rows under headers; ``(none)`` when empty. With ``--json``: a list of objects keyed by
    the headers in lower case (``CREATED`` → ``created``, ``KEY ID`` → ``key_id``)."""
    if mode.json:
        keys = [h.lower().replace(" ", "_") for h in headers]
        print_json([dict(zip(keys, row, strict=True)) for row in rows])
        return
    console = _console()
    if not rows:
        console.print("(none)")
        return
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD if console.is_terminal else None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        header_style="bold" if console.is_terminal else "",
    )
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    if console.is_terminal:
        console.print(table)
        return
    # Piped: as wide as its content (no terminal width to wrap at), no trailing blanks.
    console.width = 10_000
    with console.capture() as captured:
        console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def print_error(message: str, code: str) -> None:
    """One error, on stderr: ``error: <message> (<code>)``, or the JSON body with ``--json``."""
    if mode.json:
        sys.stderr.write(json.dumps({"error": message, "code": code}) + "\n")
        return
    console = _console(stderr=True)
    from rich.text import Text

    text = Text()
    text.append("error:", style="bold red")
    text.append(f" {message} ({code})")
    console.print(text)


def print_note(message: str) -> None:
    """A line for people beside a result (a warning, what to do next): stderr, never in
    the way of stdout's result; silent with ``--json``."""
    if mode.json:
        return
    _console(stderr=True).print(message, markup=False)


@contextmanager
def progress_bars() -> Iterator[None]:
    """While the block runs, draws what ``functions.core.progress.report`` says on stderr —
    when stderr is a terminal and ``--json`` is off; otherwise listens to nothing."""
    console = _console(stderr=True)
    if mode.json or not console.is_terminal:
        yield
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from functions.core import progress

    bars = Progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=False,
    )
    listener = StepTracker(bars)
    with bars, progress.reporting(listener):
        try:
            yield
        finally:
            listener.finish()


class StepTracker:
    """One bar per step: a new step finishes the one before it. Counts in bytes are shown
    as such (the step is named ``uploading``/``scoring`` with byte counts: see callers)."""

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        self.current: tuple[str, TaskID] | None = None
        self.started = time.monotonic()

    def __call__(
        self,
        step: str,
        *,
        done: int | None = None,
        total: int | None = None,
        detail: str | None = None,
    ) -> None:
        if self.current is None or self.current[0] != step:
            self.finish()
            task = self.bars.add_task(step, total=total, detail=detail or "")
            self.current = (step, task)
        _, task = self.current
        self.bars.update(task, completed=done or 0, total=total, detail=detail or "", refresh=False)

    def finish(self) -> None:
        if self.current is None:
            return
        _, task = self.current
        total = self.bars.tasks[task].total
        self.bars.update(task, total=total or 1, completed=total or 1)
        self.bars.stop_task(task)
        self.current = None


def usage(message: str) -> Exception:
    """A usage error to raise: ``main`` prints it as JSON with code ``usage`` and exits 2."""
    from functions.core.exceptions import InvalidRequest

    return InvalidRequest(message, code="usage")


def add_json_flag(parsers: Sequence[Any]) -> None:
    """``--json`` on every command (each parser that runs one)."""
    for parser in parsers:
        parser.add_argument(
            "--json",
            action="store_true",
            default=False,
            help="machine-readable output: one JSON document on stdout, errors as JSON",
        )
