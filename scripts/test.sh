#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (Debian build
# packages, Chromium, a Python venv with the official openai client, the default model),
# then runs every test of every crate, the embedded llama.cpp engine included.
# CI runs exactly this (.ci/run). Honours CARGO_TARGET_DIR (a warm target folder saves the
# ~8-minute llama.cpp build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh --test
export DROVER_PYTHON="$root/.venv/bin/python"
export DROVER_MODEL="${DROVER_MODEL:-$(scripts/fetch-model.sh)}"
cargo test --workspace --locked "$@"
