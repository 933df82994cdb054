"""``python -m drover ARGS`` is ``drover ARGS``: the installed binary, same arguments, same exit
code (on POSIX the Python process is replaced by it)."""

import os
import subprocess
import sys

from ._binary import binary
from ._errors import DroverError


def main() -> int:
    try:
        exe = binary()
    except DroverError as e:
        print(f"python -m drover: {e}", file=sys.stderr)
        return 2
    argv = [exe, *sys.argv[1:]]
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(exe, argv)  # does not return
    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
