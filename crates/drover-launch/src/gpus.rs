//! Which GPUs the instances get: `--gpus 0,1,2,3`, groups for tensor parallelism
//! (`--gpus 0+1,2+3`), or `--gpus auto` from `nvidia-smi`.
//!
//! Each entry becomes one instance's `CUDA_VISIBLE_DEVICES` (a group `0+1` becomes `0,1`).

use std::process::Command;

use crate::error::LaunchError;

/// What `--gpus` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuArg {
    /// Every GPU `nvidia-smi` lists.
    Auto,
    /// These, one `CUDA_VISIBLE_DEVICES` value each.
    List(Vec<String>),
}

/// Parses `--gpus`: `auto`, or comma-separated entries, each a GPU index or UUID, or several
/// joined by `+` for one instance spanning them.
pub fn parse(s: &str) -> Result<GpuArg, LaunchError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("auto") {
        return Ok(GpuArg::Auto);
    }
    let invalid = |message: String| LaunchError::Invalid {
        flag: "--gpus",
        message,
    };
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim) {
        let mut devices = Vec::new();
        for dev in entry.split('+').map(str::trim) {
            let ok = !dev.is_empty()
                && dev
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c));
            if !ok {
                return Err(invalid(format!(
                    "{entry:?} is not a GPU: write indices like 0,1,2,3 (or UUIDs), 0+1,2+3 for two GPUs per \
                     instance, or auto"
                )));
            }
            devices.push(dev);
        }
        out.push(devices.join(","));
    }
    Ok(GpuArg::List(out))
}

/// Lists the GPUs with `nvidia-smi` (their indices, in its order).
pub fn detect() -> Result<Vec<String>, LaunchError> {
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .output()
        .map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "nvidia-smi is not on PATH".to_string()
            } else {
                format!("cannot run nvidia-smi: {e}")
            };
            LaunchError::GpuQuery(format!(
                "{why}; list the GPUs (--gpus 0,1) or run without GPUs (--instances N)"
            ))
        })?;
    if !output.status.success() {
        return Err(LaunchError::GpuQuery(format!(
            "nvidia-smi failed ({}): {}; list the GPUs (--gpus 0,1) or run without GPUs (--instances N)",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_query(&String::from_utf8_lossy(&output.stdout))
}

/// The output of `nvidia-smi --query-gpu=index --format=csv,noheader`: one index a line.
fn parse_query(text: &str) -> Result<Vec<String>, LaunchError> {
    let gpus: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if gpus.is_empty() {
        return Err(LaunchError::GpuQuery(
            "nvidia-smi lists no GPU; run without GPUs with --instances N".into(),
        ));
    }
    if let Some(bad) = gpus.iter().find(|g| !g.bytes().all(|b| b.is_ascii_digit())) {
        return Err(LaunchError::GpuQuery(format!(
            "unexpected nvidia-smi output line {bad:?}; list the GPUs yourself with --gpus 0,1,…"
        )));
    }
    Ok(gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_groups_and_auto() {
        assert_eq!(parse("auto").unwrap(), GpuArg::Auto);
        assert_eq!(
            parse("0,1, 2").unwrap(),
            GpuArg::List(vec!["0".into(), "1".into(), "2".into()])
        );
        assert_eq!(
            parse("0+1,2+3").unwrap(),
            GpuArg::List(vec!["0,1".into(), "2,3".into()])
        );
        assert_eq!(
            parse("GPU-8f3e-1a").unwrap(),
            GpuArg::List(vec!["GPU-8f3e-1a".into()])
        );
        for bad in ["", "0,,1", "0;1", "0 1", "1+"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--gpus: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn nvidia_smi_output() {
        assert_eq!(parse_query("0\n1\n 2 \n\n").unwrap(), ["0", "1", "2"]);
        assert!(
            parse_query("\n")
                .unwrap_err()
                .to_string()
                .contains("no GPU")
        );
        assert!(parse_query("No devices were found\n").is_err());
    }
}
