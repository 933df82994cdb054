"""``drover.run``: one ``drover run`` process per call, driven from Python.

The binary does the job (one engine, one set of semantics); this module turns Python arguments
into its command line, shows its progress, and turns its output file, summary and exit code
into Python objects and exceptions.
"""

from __future__ import annotations

import codecs
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ._binary import binary
from ._errors import DroverError, Interrupted, TasksFailed, UsageError, clean, cli_message
from ._results import Results

PathLike = Union[str, "os.PathLike[str]"]

_MODES = ("adaptive", "concurrent", "serial")
# How much of the child's stderr is kept for exception messages.
_TAIL_CHARS = 64 * 1024


# --- the command line -------------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _duration(value: datetime.timedelta) -> str:
    return f"{max(0, round(value.total_seconds() * 1000))}ms"


def _option_args(name: str, value: Any) -> List[str]:
    """``name=value`` as CLI arguments: True → a bare flag, False/None → nothing, a list → a
    comma-separated value, a timedelta → milliseconds, a dict → JSON."""
    if value is None or value is False:
        return []
    if value is True:
        return [_flag(name)]
    if isinstance(value, datetime.timedelta):
        return [_flag(name), _duration(value)]
    if isinstance(value, Mapping):
        return [_flag(name), json.dumps(value)]
    if isinstance(value, (list, tuple)):
        return [_flag(name), ",".join(str(v) for v in value)]
    return [_flag(name), os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


def _backends_arg(backends: Any) -> Optional[str]:
    if backends is None:
        return None
    if isinstance(backends, (str, int)):
        return str(backends)
    items = [str(b) for b in backends]
    if not items:
        raise ValueError("backends is empty: name at least one (a port, host:port or URL), or pass None")
    return ",".join(items)


# --- tasks --------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, dates and paths in a task, as JSON values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_dataframe(tasks: Any) -> bool:
    return hasattr(tasks, "to_json") and hasattr(tasks, "columns") and hasattr(tasks, "iterrows")


def _write_tasks(tasks: Any, path: Path, *, replace: bool) -> int:
    """Writes the tasks as JSONL (temporary file, then rename); returns how many.

    An existing file with other content is replaced only with ``replace`` (a resume or an
    overwrite): otherwise it may be someone's own file, and this raises ``FileExistsError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            if _is_dataframe(tasks):
                # One object per row; missing values become null.
                text = tasks.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
                text = text.rstrip("\n")
                if text:
                    f.write(text + "\n")
                    count = text.count("\n") + 1
            else:
                for i, task in enumerate(tasks):
                    if isinstance(task, str):
                        task = {"prompt": task}
                    elif not isinstance(task, Mapping):
                        raise TypeError(
                            f"task {i}: expected a dict (a task: prompt, messages, body or template fields) "
                            f"or a string (a prompt), got {type(task).__name__}"
                        )
                    try:
                        line = json.dumps(dict(task), ensure_ascii=False, default=_jsonable, allow_nan=False)
                    except (TypeError, ValueError) as e:
                        raise TypeError(f"task {i} cannot be written as JSON: {e}") from None
                    f.write(line + "\n")
                    count += 1
            f.flush()
            os.fsync(f.fileno())
        if path.exists() and not replace and not _same_bytes(path, tmp):
            raise FileExistsError(
                f"{path} exists and does not hold these tasks: pass resume=True or overwrite=True to "
                "replace it, or choose another output"
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def tasks_path_for(output: Path) -> Path:
    """Where ``run`` writes in-memory tasks for an ``output``: beside it, its name without
    ``.jsonl`` plus ``.tasks.jsonl`` (``X.results.jsonl`` → ``X.results.tasks.jsonl``), so that
    a resume finds the same input."""
    name = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(name + ".tasks.jsonl")


def default_output(input_path: Path) -> Path:
    """The CLI's default output: INPUT's stem + ``.results.jsonl``, beside it."""
    stem = input_path.stem or "tasks"
    return input_path.with_name(f"{stem}.results.jsonl")


# --- the child process --------------------------------------------------------------------------


class _Pump(threading.Thread):
    """Copies a child's output fd to a Python stream as it comes, keeping the end of it."""

    def __init__(self, fd: int, sink: Any, keep: int):
        super().__init__(daemon=True)
        self.fd = fd
        self.sink = sink
        self.keep = keep
        self.parts: List[str] = []
        self.kept = 0

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except InterruptedError:
                    continue
                except OSError:
                    break  # EIO: the pty's other side closed
                if not chunk:
                    break
                self._take(decoder.decode(chunk))
            self._take(decoder.decode(b"", final=True))
        finally:
            os.close(self.fd)

    def _take(self, text: str) -> None:
        if not text:
            return
        if self.keep:
            self.parts.append(text)
            self.kept += len(text)
            while self.kept > self.keep and len(self.parts) > 1:
                self.kept -= len(self.parts.pop(0))
        if self.sink is not None:
            try:
                self.sink.write(text)
                self.sink.flush()
            except (OSError, ValueError):
                self.sink = None  # closed or broken: keep collecting only

    def text(self) -> str:
        return "".join(self.parts)[-self.keep :] if self.keep else ""


def _terminal_stderr() -> Optional[int]:
    """The fd of Python's stderr when it is a terminal (where the CLI draws its bar)."""
    if os.name != "posix" or sys.stderr is None:
        return None
    try:
        fd = sys.stderr.fileno()
        return fd if sys.stderr.isatty() and os.isatty(fd) else None
    except (AttributeError, OSError, ValueError):
        return None


def _stderr_channel(progress: bool):
    """(fd for the child's stderr, fd to read it from): a pseudo-terminal sized like Python's
    stderr when that is a terminal and progress is shown (so the child draws its progress bar),
    else a pipe (the child prints plain progress lines every 10 s)."""
    term = _terminal_stderr() if progress else None
    if term is not None:
        try:
            import fcntl
            import pty
            import termios

            master, slave = pty.openpty()
            try:
                size = fcntl.ioctl(term, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
                # Bytes pass through unchanged (no \n → \r\n here: the real terminal does that).
                attrs = termios.tcgetattr(slave)
                attrs[1] &= ~termios.ONLCR
                termios.tcsetattr(slave, termios.TCSANOW, attrs)
            except (OSError, termios.error):
                pass
            return slave, master
        except (ImportError, OSError):
            pass
    r, w = os.pipe()
    return w, r


def _interrupt(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            proc.send_signal(signal.SIGINT)
        else:  # no graceful stop to ask for
            proc.terminate()
    except ProcessLookupError:
        pass


def _stop_with_parent():
    """On Linux, a function for the child to run before exec so that it is killed if this Python
    process dies: a killed notebook kernel must not leave a job writing to an output that a
    resumed run would then write to as well. SIGKILL, not drover's graceful SIGTERM: with its
    stderr reader gone, drover could not even print that it is stopping. The output stays a
    valid journal (a torn last line, if any, is repaired by the resume)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    except (ImportError, OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


def _wait(proc: subprocess.Popen) -> int:
    """Waits for the child in short slices, so that a KeyboardInterrupt is raised promptly even
    when the signal was delivered to another thread."""
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue


def execute(argv: Sequence[str], *, env: Optional[Mapping[str, str]], progress: bool):
    """Runs ``argv``; returns (exit code, stderr tail, whether Python was interrupted).

    The child runs in its own process group so that a terminal's Ctrl-C reaches Python only;
    Python forwards it (one SIGINT: drover stops taking tasks and lets requests in flight
    finish within --grace). A second KeyboardInterrupt forwards a second SIGINT (drover exits
    at once, its output still consistent).
    """
    err_child, err_ours = _stderr_channel(progress)
    out_r, out_w = os.pipe()
    kwargs: Dict[str, Any] = {}
    if os.name == "posix":
        if sys.version_info >= (3, 11):
            kwargs["process_group"] = 0
        else:
            kwargs["start_new_session"] = True
        stop_with_us = _stop_with_parent()
        if stop_with_us is not None:
            kwargs["preexec_fn"] = stop_with_us
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_child, env=env, close_fds=True, **kwargs
        )
    except OSError as e:
        for fd in (err_child, err_ours, out_r, out_w):
            os.close(fd)
        raise DroverError(f"cannot start {argv[0]}: {e}", exit_code=2, argv=list(argv)) from None
    os.close(err_child)
    os.close(out_w)
    err_pump = _Pump(err_ours, sys.stderr if progress else None, _TAIL_CHARS)
    out_pump = _Pump(out_r, sys.stdout if progress else None, _TAIL_CHARS)
    err_pump.start()
    out_pump.start()
    interrupted = False
    try:
        try:
            code = _wait(proc)
        except KeyboardInterrupt:
            interrupted = True
            _interrupt(proc)
            try:
                code = _wait(proc)
            except KeyboardInterrupt:
                _interrupt(proc)
                code = _wait(proc)
    finally:
        if proc.poll() is None:  # an exception of our own: never leave the job running
            _interrupt(proc)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err_pump.join(timeout=10)
        out_pump.join(timeout=10)
    return code, clean(out_pump.text() + err_pump.text()), interrupted


# --- run ----------------------------------------------------------------------------------------


def _template_path(template: Any, scratch: Path) -> Optional[str]:
    if template is None:
        return None
    text = os.fspath(template)
    if not isinstance(template, os.PathLike) and ("{{" in text or "{%" in text) and not os.path.exists(text):
        path = scratch / "template.j2"
        path.write_text(text, encoding="utf-8")
        return str(path)
    return text


def _schema_path(schema: Any, scratch: Path) -> Optional[str]:
    if schema is None:
        return None
    if isinstance(schema, Mapping):
        path = scratch / "schema.json"
        path.write_text(json.dumps(schema), encoding="utf-8")
        return str(path)
    return os.fspath(schema)


def run(
    tasks: Union[PathLike, Iterable[Union[Mapping[str, Any], str]], Any],
    *,
    backends: Union[None, str, int, Iterable[Union[str, int]]] = None,
    output: Optional[PathLike] = None,
    mode: Optional[str] = None,
    workers: Optional[int] = None,
    model: Optional[str] = None,
    template: Optional[PathLike] = None,
    schema: Union[None, PathLike, Mapping[str, Any]] = None,
    max_tokens: Optional[int] = None,
    temperature: Optional[float] = None,
    system: Optional[str] = None,
    extra_body: Optional[Mapping[str, Any]] = None,
    resume: bool = False,
    retry_failed: bool = False,
    overwrite: bool = False,
    extra_args: Sequence[str] = (),
    progress: bool = True,
    as_dataframe: bool = False,
    raise_on_failure: bool = False,
    env: Optional[Mapping[str, Optional[str]]] = None,
    **options: Any,
):
    """Runs a batch job with ``drover run`` and returns its results.

    ``tasks``: a path to a JSONL file, or tasks in memory — an iterable of dicts (any task shape
    of the CLI: ``prompt``, ``messages``, an OpenAI batch request, or fields for ``template``)
    or strings (prompts), or a pandas DataFrame (one task per row). In-memory tasks are written
    to a file beside ``output`` (or to a new temporary folder when no ``output`` is
    given), so the same call with ``resume=True`` continues an interrupted job.
    (``X.results.jsonl`` → ``X.results.tasks.jsonl``.)

    The keyword arguments are the CLI's flags; ``**options`` passes any other flag of
    ``drover run`` by name (``attempts=8`` → ``--attempts 8``, ``no_hedge=True`` →
    ``--no-hedge``, ``grace=timedelta(seconds=5)`` → ``--grace 5000ms``); ``extra_args`` are
    appended verbatim.

    Returns a :class:`drover.Results` (iterable of the output lines as dicts; ``.summary``,
    ``.ok``, ``.failed``, ``.to_pandas()``), or a pandas DataFrame with ``as_dataframe=True``.
    Tasks that failed are in the results (``error`` set); ``raise_on_failure=True`` raises
    :class:`drover.TasksFailed` instead. Raises :class:`drover.UsageError` (exit 2, nothing
    sent) with the CLI's message, and :class:`drover.Interrupted` (exit 130 or Ctrl-C) with
    ``.output`` to resume.
    """
    if mode is not None and mode not in _MODES:
        raise ValueError(f"mode={mode!r}: use one of {', '.join(_MODES)}")
    if retry_failed and not resume:
        raise ValueError("retry_failed=True needs resume=True (it retries the failed lines of an existing output)")
    if resume and overwrite:
        raise ValueError("resume=True and overwrite=True contradict each other: choose one")
    if isinstance(tasks, (bytes, bytearray)) or isinstance(tasks, Mapping):
        raise TypeError("tasks: pass a path to a JSONL file, or a list of tasks (dicts or prompt strings)")
    if resume and output is None and not isinstance(tasks, (str, os.PathLike)):
        raise ValueError(
            "resume=True with tasks in memory needs output=: the output of the run to continue "
            "(drover.Interrupted.output names it)"
        )

    exe = binary()
    user_summary = options.pop("summary", None)
    with tempfile.TemporaryDirectory(prefix="drover-run-") as scratch_dir:
        scratch = Path(scratch_dir)
        if isinstance(tasks, (str, os.PathLike)):
            input_path = Path(tasks)
            out = Path(output) if output is not None else default_output(input_path)
        else:
            if output is not None:
                out = Path(output)
            else:
                out = Path(tempfile.mkdtemp(prefix="drover-")) / "drover.results.jsonl"
            input_path = tasks_path_for(out)
            refused = out.exists() and not (resume or overwrite)
            if not (refused and input_path.exists()):
                # (An existing output without resume/overwrite is the CLI's to refuse, with its
                # message: the files beside it are left alone.)
                _write_tasks(tasks, input_path, replace=resume or overwrite)
        summary_path = Path(user_summary) if user_summary is not None else scratch / "summary.json"

        argv: List[str] = [exe, "run", str(input_path), "-o", str(out), "--summary", str(summary_path)]
        argv += _option_args("backends", _backends_arg(backends))
        argv += _option_args("mode", mode)
        argv += _option_args("workers", workers)
        argv += _option_args("model", model)
        argv += _option_args("template", _template_path(template, scratch))
        argv += _option_args("schema", _schema_path(schema, scratch))
        argv += _option_args("max_tokens", max_tokens)
        argv += _option_args("temperature", temperature)
        argv += _option_args("system", system)
        if extra_body is not None:
            argv += ["--extra-body", extra_body if isinstance(extra_body, str) else json.dumps(extra_body)]
        argv += _option_args("resume", resume)
        argv += _option_args("retry_failed", retry_failed)
        argv += _option_args("overwrite", overwrite)
        for name, value in options.items():
            argv += _option_args(name, value)
        if not progress:
            argv.append("--quiet")
        argv += [str(a) for a in extra_args]

        child_env = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = str(value)

        code, tail, interrupted = execute(argv, env=child_env, progress=progress)
        summary = None
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except ValueError:
                summary = None
        common = {"exit_code": code, "stderr": tail, "argv": argv}

        if code == 2 and not interrupted:
            raise UsageError(cli_message(tail, code), **common)
        results = Results(out, summary=summary, exit_code=code)
        if interrupted or code == 130:
            unfinished = None
            if summary and isinstance(summary.get("tasks"), dict):
                unfinished = summary["tasks"].get("unfinished")
            what = f"interrupted with {unfinished} task(s) unfinished" if unfinished is not None else "interrupted"
            raise Interrupted(
                f"{what}; every finished task is in {out}. "
                f"Resume with drover.run(<the same tasks>, output={str(out)!r}, resume=True)",
                output=out,
                results=results if out.exists() else None,
                **common,
            )
        if code not in (0, 1):
            why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            raise DroverError(f"drover run failed ({why}): {cli_message(tail, code)}", **common)
        if code == 1 and not out.exists():
            # Exit 1 without an output: the job could not write it.
            raise DroverError(cli_message(tail, code), **common)
        if code == 1 and raise_on_failure:
            failed = len(results.failed)
            raise TasksFailed(
                f"{failed} task(s) failed; each has a record in {out} "
                "(retry them with resume=True, retry_failed=True)",
                results=results,
                **common,
            )
        if as_dataframe:
            return results.to_pandas()
        return results
