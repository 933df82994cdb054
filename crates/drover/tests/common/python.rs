//! The Python the client tests run: the project venv's (or `DROVER_PYTHON`), which
//! `scripts/setup.sh --test` fills with the packages users have (`scripts/requirements-test.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// That Python, once it imports every module of `modules`; a failure saying how to get them
/// otherwise.
pub fn python_with(modules: &[&str]) -> PathBuf {
    let candidate = std::env::var_os("DROVER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let names = modules.join(", ");
    let ok = Command::new(&candidate)
        .args(["-c", &format!("import {names}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import {names}: run `scripts/setup.sh --test` (or point DROVER_PYTHON at a \
         Python that has them)",
        candidate.display()
    );
    candidate
}
