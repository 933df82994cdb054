#!/usr/bin/env bash
# Builds the Python wheel — the `drover` binary plus the `drover` Python module — into dist/.
#
#   scripts/build-wheel.sh                 release wheel without the embedded llama.cpp engine
#   pip install dist/drover-*.whl          then: python -c 'import drover' / python -m drover --help
#
# Knobs (environment):
#   DROVER_WHEEL_FEATURES=engine   with the embedded llama.cpp engine (`drover.run` with no
#                                  backend, `drover serve`): needs cmake, clang, libclang
#                                  (scripts/setup.sh) and ~8 more minutes on 2 cores. Any cargo
#                                  features of crates/drover, comma-separated (e.g. cuda).
#   DROVER_WHEEL_PROFILE=release   cargo profile (dev: a debug build, quicker to compile)
#   DROVER_WHEEL_OUT=dist          where the wheel goes
#   CARGO_TARGET_DIR               as for cargo (default: target/)
#
# maturin: $MATURIN, else the project venv's (.venv, made by scripts/setup.sh --test), else the
# one on PATH; if none, it is installed into .venv from PyPI (requirements-test.txt's version).
# Prints the wheel's path on stdout (everything else goes to stderr).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '\033[1m[build-wheel]\033[0m %s\n' "$*" >&2; }

features=${DROVER_WHEEL_FEATURES:-}
profile=${DROVER_WHEEL_PROFILE:-release}
out=${DROVER_WHEEL_OUT:-$root/dist}

command -v cargo >/dev/null || { say "cargo not found: install a Rust toolchain (https://rustup.rs)"; exit 2; }

maturin=${MATURIN:-}
if [ -n "$maturin" ]; then
  [ -x "$maturin" ] || { say "MATURIN=$maturin is not an executable"; exit 2; }
elif [ -x "$root/.venv/bin/maturin" ]; then
  maturin="$root/.venv/bin/maturin"
elif command -v maturin >/dev/null; then
  maturin=$(command -v maturin)
else
  if [ ! -x "$root/.venv/bin/python" ]; then
    say "creating $root/.venv"
    python3 -m venv "$root/.venv" || { say "python3 -m venv failed: install python3-venv (scripts/setup.sh --test does)"; exit 2; }
  fi
  pin=$(grep -E '^maturin==' "$root/scripts/requirements-test.txt" || echo maturin)
  say "installing $pin into .venv"
  "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check "$pin"
  maturin="$root/.venv/bin/maturin"
fi

args=(build --locked --profile "$profile" --out "$out")
[ -n "$features" ] && args+=(--features "$features")
mkdir -p "$out"
say "maturin ${args[*]} (features: ${features:-none, no embedded engine})"
start=$(date +%s)
"$maturin" "${args[@]}" >&2
wheel=$(ls -t "$out"/drover-*.whl | head -n1)
say "built $wheel in $(( $(date +%s) - start ))s"
echo "$wheel"
