"""The output of a run, as Python objects: the OpenAI batch output lines, and a table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

Record = Dict[str, Any]

# The DataFrame's own columns, in order (the answer's fields go between content and error_code).
BASE_COLUMNS = [
    "custom_id",
    "line",
    "content",
    "error_code",
    "error_message",
    "status_code",
    "backend",
    "attempts",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
]


def read_records(path: os.PathLike) -> Iterator[Record]:
    """The output's lines, parsed, in file (completion) order.

    A last line without its newline (a SIGKILLed writer) is not a result yet: it is skipped, as
    ``--resume`` would drop it. Any other unreadable line is an error.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except ValueError as e:
                if not raw.endswith(b"\n"):
                    return  # torn last line
                raise ValueError(f"{path}: line {number} is not JSON: {e}") from None


def answer_text(record: Record) -> Optional[str]:
    """The first choice's text (chat ``message.content``, its text parts joined, or the completions
    ``text``); ``None`` when the record has no such body."""
    response = record.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message = choice.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _split(record: Record) -> Dict[str, Any]:
    """One record as drover's own columns (`row`) and its structured answer (`answer`)."""
    meta = record.get("drover") or {}
    error = record.get("error") or {}
    response = record.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    row = {
        "custom_id": record.get("custom_id"),
        "line": meta.get("line"),
        "content": answer_text(record),
        "error_code": error.get("code") if error else None,
        "error_message": error.get("message") if error else None,
        "status_code": response.get("status_code") if isinstance(response, dict) else None,
        "backend": meta.get("backend"),
        "attempts": meta.get("attempts"),
        "latency_ms": meta.get("latency_ms"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }
    answer = meta.get("answer")
    return {"row": row, "answer": answer if isinstance(answer, dict) else None}


def table(records: List[Record]) -> "tuple[list[str], list[list[Any]]]":
    """Columns and rows of the records, in input order (``drover.line``).

    Every top-level field of a structured answer (``--schema``: ``drover.answer``) gets its own
    column, placed after ``content``; drover's own columns that share a field's name get a
    ``drover_`` prefix (as in ``--table``). A task without an answer has empty cells there.
    """
    flats = [_split(r) for r in records]
    fields: List[str] = []
    seen = set()
    for f in flats:
        for key in (f["answer"] or {}):
            if key not in seen:
                seen.add(key)
                fields.append(key)
    own = {c: (f"drover_{c}" if c in seen else c) for c in BASE_COLUMNS}
    head, tail = BASE_COLUMNS[:3], BASE_COLUMNS[3:]
    columns = [own[c] for c in head] + fields + [own[c] for c in tail]
    order = sorted(range(len(flats)), key=lambda i: (flats[i]["row"]["line"] is None, flats[i]["row"]["line"] or 0, i))
    rows = []
    for i in order:
        f = flats[i]
        answer = f["answer"] or {}
        rows.append([f["row"][c] for c in head] + [answer.get(k) for k in fields] + [f["row"][c] for c in tail])
    return columns, rows


class Results:
    """The lines of a run's output file (OpenAI batch output format, drover's extras under
    ``"drover"``), with the run's summary.

    - iterating gives each line as a dict, in file (completion) order;
    - ``ok`` / ``failed``: the successful / failed lines (``error`` null or not);
    - ``summary``: the ``--summary`` JSON of the run that produced it (``None`` if it wrote none);
    - ``to_pandas()``: a DataFrame, one row per task in input order.
    """

    def __init__(self, output: os.PathLike, *, summary: Optional[dict] = None, exit_code: int = 0):
        self.output = Path(output)
        self.summary = summary
        self.exit_code = exit_code
        self._records: Optional[List[Record]] = None

    @classmethod
    def from_file(cls, output: os.PathLike) -> "Results":
        """The results of an existing output file (e.g. one written by the CLI)."""
        return cls(output)

    def records(self) -> List[Record]:
        """Every line, parsed (read once, then kept)."""
        if self._records is None:
            self._records = list(read_records(self.output)) if self.output.exists() else []
        return self._records

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())

    def __getitem__(self, i):
        return self.records()[i]

    @property
    def ok(self) -> List[Record]:
        """The lines of tasks that succeeded."""
        return [r for r in self.records() if r.get("error") is None]

    @property
    def failed(self) -> List[Record]:
        """The lines of tasks that failed (each carries ``error.code`` and ``error.message``)."""
        return [r for r in self.records() if r.get("error") is not None]

    def by_id(self) -> Dict[str, Record]:
        """The lines keyed by custom_id."""
        return {r["custom_id"]: r for r in self.records()}

    def rows(self) -> List[Dict[str, Any]]:
        """The table of :meth:`to_pandas` as a list of dicts (no pandas needed)."""
        columns, rows = table(self.records())
        return [dict(zip(columns, row)) for row in rows]

    def to_pandas(self):
        """A pandas DataFrame, one row per task in input order: ``custom_id``, ``line``,
        ``content`` (the answer text), the structured answer's fields (``--schema``),
        ``error_code``, ``error_message``, ``status_code``, ``backend``, ``attempts``,
        ``latency_ms``, ``prompt_tokens``, ``completion_tokens``."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Results.to_pandas() needs pandas: `pip install pandas` (or iterate the Results as dicts)"
            ) from None
        columns, rows = table(self.records())
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        if self._records is None and not self.output.exists():
            return f"<drover.Results: no output at {self.output}>"
        ok = sum(1 for r in self.records() if r.get("error") is None)
        return f"<drover.Results {len(self)} tasks ({ok} ok, {len(self) - ok} failed) in {self.output}>"
