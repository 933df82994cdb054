//! Dynamic membership: `--backends-file FILE` (re-read when it changes) and `dns://name:port`
//! (every address the name resolves to, re-resolved periodically — a Kubernetes headless
//! service). Each change is sent to the dispatcher as the full set; a backend that joins is
//! first checked like any other (reachable, serves the job's model), one that leaves drains.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_client::{BackendAddr, Client};
use drover_sched::BackendSpec;
use tokio::sync::mpsc;

use crate::discover::discover;

/// Where the backend set comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Backends named on the command line.
    pub fixed: Vec<BackendAddr>,
    /// `--backends-file`.
    pub file: Option<PathBuf>,
    /// `dns://name:port` entries.
    pub dns: Vec<(String, u16)>,
}

impl Sources {
    /// Whether the set can change during the run.
    pub fn is_dynamic(&self) -> bool {
        self.file.is_some() || !self.dns.is_empty()
    }

    /// The current set of addresses. A bad line in the file is an error naming it.
    pub async fn resolve(&self) -> Result<Vec<BackendAddr>, String> {
        let mut out = self.fixed.clone();
        if let Some(f) = &self.file {
            out.extend(read_file(f)?);
        }
        for (name, port) in &self.dns {
            match tokio::net::lookup_host((name.as_str(), *port)).await {
                Ok(addrs) => {
                    let mut ips: Vec<_> = addrs.collect();
                    ips.sort();
                    ips.dedup();
                    for a in ips {
                        let spec = if a.is_ipv6() {
                            format!("[{}]:{}", a.ip(), a.port())
                        } else {
                            a.to_string()
                        };
                        out.push(BackendAddr::parse(&spec).map_err(|e| e.to_string())?);
                    }
                }
                // A name that does not resolve (yet) has no members; a headless service with no
                // ready pods looks exactly like this.
                Err(e) => {
                    tracing::info!(target: "drover::membership", name = %name, error = %e, "dns name does not resolve")
                }
            }
        }
        let mut seen = BTreeSet::new();
        out.retain(|a| seen.insert(a.base.clone()));
        Ok(out)
    }
}

/// Reads a backends file: one backend a line; blank lines and `#` comments are skipped.
pub fn read_file(path: &Path) -> Result<Vec<BackendAddr>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --backends-file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let addr = BackendAddr::parse(entry)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        out.push(addr);
    }
    Ok(out)
}

/// Watches the sources and sends the checked set whenever it changes.
pub fn watch(
    client: Client,
    sources: Sources,
    model: Option<String>,
    initial: Vec<BackendSpec>,
    every: Duration,
) -> mpsc::Receiver<Vec<BackendSpec>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut current: Vec<BackendSpec> = initial;
        let mut known: BTreeSet<String> = current.iter().map(|b| b.addr.base.clone()).collect();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if tx.is_closed() {
                return;
            }
            let addrs = match sources.resolve().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "drover::membership", "{e}; keeping the current backends");
                    continue;
                }
            };
            let wanted: BTreeSet<String> = addrs.iter().map(|a| a.base.clone()).collect();
            if wanted == known {
                continue;
            }
            let mut next: Vec<BackendSpec> = current
                .iter()
                .filter(|b| wanted.contains(&b.addr.base))
                .cloned()
                .collect();
            let new: Vec<BackendAddr> = addrs
                .into_iter()
                .filter(|a| !known.contains(&a.base))
                .collect();
            let mut joined: BTreeSet<String> = BTreeSet::new();
            for addr in new {
                // A newcomer joins only once it answers and serves the job's model.
                let label = addr.label.clone();
                match discover(
                    &client,
                    vec![addr],
                    model.as_deref(),
                    Duration::from_secs(5),
                )
                .await
                {
                    Ok(f) if !f.backends.is_empty() => {
                        joined.insert(f.backends[0].addr.base.clone());
                        next.extend(f.backends);
                    }
                    Ok(f) => {
                        for (b, why) in f.left_out {
                            tracing::warn!(target: "drover::membership", backend = %b, "not joining: {why}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "drover::membership", backend = %label, "not joining yet: {e}")
                    }
                }
            }
            // Newcomers that did not pass are not members yet: they are tried again next tick.
            let _ = joined;
            known = next.iter().map(|b| b.addr.base.clone()).collect();
            current = next;
            if tx.send(current.clone()).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_file_skips_comments_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.txt");
        std::fs::write(
            &p,
            "# fleet\n8001\n\n  gpu2:8000  # second\nhttp://gpu3:9000/v1\n",
        )
        .unwrap();
        let got: Vec<String> = read_file(&p).unwrap().into_iter().map(|a| a.base).collect();
        assert_eq!(
            got,
            vec![
                "http://127.0.0.1:8001/v1",
                "http://gpu2:8000/v1",
                "http://gpu3:9000/v1"
            ]
        );
        std::fs::write(&p, "8001\nnot a backend\n").unwrap();
        let e = read_file(&p).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[tokio::test]
    async fn dns_resolves_every_address() {
        let s = Sources {
            dns: vec![("localhost".into(), 8123)],
            ..Sources::default()
        };
        let got = s.resolve().await.unwrap();
        assert!(!got.is_empty());
        assert!(got.iter().all(|a| a.base.ends_with(":8123/v1")), "{got:?}");
    }
}
