"""Exceptions raised by :func:`drover.run`: the CLI's exit codes, as Python exceptions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ._results import Results

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]")


def clean(text: str) -> str:
    """Terminal text as plain lines: escape sequences and carriage-return redraws removed."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    # A line redrawn with \r keeps only its last state (what a terminal would show).
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def cli_message(stderr: str, exit_code: int) -> str:
    """The message the CLI printed for its failure, taken from its stderr.

    - ``drover run: …`` (configuration errors, unreachable backends, bad files): the last such
      message, with its indented continuation lines.
    - clap's ``error: …`` block (unknown flag, bad value), without the usage lines after it.
    - otherwise the last non-empty line, or a line naming the exit code.
    """
    lines = [line.rstrip() for line in clean(stderr).split("\n")]
    starts = [i for i, line in enumerate(lines) if line.startswith("drover run: ")]
    if starts:
        # The last message, with its indented continuation lines (e.g. one per backend).
        block = [lines[starts[-1]]]
        for follow in lines[starts[-1] + 1 :]:
            if not follow.startswith((" ", "\t")):
                break
            block.append(follow)
        return "\n".join(block)
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            block = []
            for follow in lines[i:]:
                if follow.startswith("Usage:") or follow.startswith("For more information"):
                    break
                block.append(follow)
            return "\n".join(block).strip()
    rest = [line for line in lines if line.strip()]
    if rest:
        return rest[-1].strip()
    return f"drover exited with code {exit_code} and printed nothing"


class DroverError(Exception):
    """A ``drover`` command that did not do its job.

    ``exit_code`` is the CLI's exit status (negative: killed by that signal), ``stderr`` the end
    of what it printed (escape sequences removed), and the message is the CLI's own.
    """

    def __init__(self, message: str, *, exit_code: int, stderr: str = "", argv: Optional[list] = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.stderr = stderr
        self.argv = list(argv) if argv is not None else None

    def __str__(self) -> str:
        return self.message


class UsageError(DroverError):
    """Exit code 2: a usage or configuration error (bad flag, unreachable backends, an existing
    output without ``resume``/``overwrite`` …). Nothing was sent."""


class TasksFailed(DroverError):
    """Exit code 1: some tasks failed; each has a record. Raised only with
    ``raise_on_failure=True``; ``results`` holds every line (failures included)."""

    def __init__(self, message: str, *, results: "Results", **kw):
        super().__init__(message, **kw)
        self.results = results


class Interrupted(DroverError, KeyboardInterrupt):
    """The job was interrupted (Ctrl-C / KeyboardInterrupt in Python, or SIGINT/SIGTERM to
    drover): exit code 130. Every finished task is in ``output``;
    ``drover.run(..., output=e.output, resume=True)`` sends the rest.

    Also a :class:`KeyboardInterrupt`, so code that stops on Ctrl-C keeps doing so.
    """

    def __init__(self, message: str, *, output, results: Optional["Results"], **kw):
        super().__init__(message, **kw)
        self.output = output
        self.results = results
