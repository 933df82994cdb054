"""drover from Python: run big batches of LLM calls over a fleet of OpenAI-compatible servers.

A thin wrapper around the ``drover`` binary that the wheel installs beside ``python``: every call
is one ``drover run`` process, so jobs behave exactly as on the command line (same scheduling,
retries, output format, resume), and the GIL never slows a job down.

    >>> import drover
    >>> res = drover.run(["Say hi", "Say bye"], backends="8001,8002")
    >>> [r["custom_id"] for r in res.ok]
    >>> df = res.to_pandas()

See docs/python.md.
"""

from ._binary import binary
from ._errors import DroverError, Interrupted, TasksFailed, UsageError
from ._results import Results
from ._run import run

try:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("drover")
    except PackageNotFoundError:  # a source checkout on sys.path, not installed
        __version__ = "0+unknown"
except ImportError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = [
    "run",
    "Results",
    "DroverError",
    "UsageError",
    "TasksFailed",
    "Interrupted",
    "binary",
    "__version__",
]
