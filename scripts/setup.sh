#!/usr/bin/env bash
# Installs what drover's build, demo and tests need on a fresh Debian/Ubuntu machine, then
# fetches the default model. Idempotent: a second run only checks.
#
#   scripts/setup.sh            build deps + model (enough for the demo)
#   scripts/setup.sh --test     also the test peers: Python venv with the openai client, Chromium
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi
}

# --- Debian packages: cmake + clang/libclang build llama.cpp (llama-cpp-sys-2 uses bindgen) ---
pkgs=()
command -v cmake >/dev/null || pkgs+=(cmake)
command -v clang >/dev/null || pkgs+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || pkgs+=(libclang-dev)
command -v c++ >/dev/null || pkgs+=(g++)
if [ $want_test = 1 ]; then
  command -v chromium >/dev/null || pkgs+=(chromium)
  python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# --- Python test peers (official openai client, Prometheus text parser, jsonschema; maturin and
# pandas for the Python wheel test) ---
if [ $want_test = 1 ]; then
  venv="$root/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import openai, prometheus_client, jsonschema, maturin, pandas' 2>/dev/null; then
    say "installing Python test packages"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/scripts/requirements-test.txt"
  fi
fi

# --- the default model ---
"$root/scripts/fetch-model.sh" >/dev/null
say "ready"
