"""Finding the ``drover`` binary that this package drives."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import List

from ._errors import DroverError

_EXE = "drover.exe" if os.name == "nt" else "drover"


def _candidates() -> List[Path]:
    """Where an installed wheel puts its binary, most specific first."""
    found: List[Path] = []
    here = Path(__file__).resolve().parent  # …/site-packages/drover
    # The interpreter's own scripts folder (a virtual environment's bin/, a system install's).
    schemes = [None]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        schemes.append(user_scheme)  # pip install --user
    for scheme in schemes:
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if scripts:
            found.append(Path(scripts) / _EXE)
    found.append(Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin") / _EXE)
    # pip install --target DIR: the package in DIR, scripts in DIR/bin.
    found.append(here.parent / "bin" / _EXE)
    unique: List[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def binary() -> str:
    """The path of the ``drover`` binary.

    ``DROVER_BIN`` wins; otherwise the one installed with this package (the wheel puts it in the
    environment's scripts folder, beside ``python``), then ``drover`` on ``PATH``.
    """
    override = os.environ.get("DROVER_BIN")
    if override:
        path = Path(override).expanduser()
        if not _usable(path):
            raise DroverError(
                f"DROVER_BIN={override!r} is not an executable file", exit_code=2
            )
        return str(path)
    for path in _candidates():
        if _usable(path):
            return str(path)
    on_path = shutil.which(_EXE)
    if on_path:
        return on_path
    raise DroverError(
        "the drover binary was not found (looked in "
        + ", ".join(str(p.parent) for p in _candidates())
        + " and on PATH): install the wheel (`pip install drover` / `scripts/build-wheel.sh`) "
        "or point DROVER_BIN at a drover binary",
        exit_code=2,
    )
