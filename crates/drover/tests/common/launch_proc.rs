//! Driving a real `drover launch` from tests: its output line by line as it comes, the pids of
//! the instances it started (from its status lines), signals, and a check that nothing it
//! started is left on the machine.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `drover launch`. Dropping it stops it (SIGTERM, then SIGKILL) and kills anything
/// it left, so a failing test does not leak servers into the next.
pub struct Launcher {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

/// Starts `cmd` (a `drover launch …` command) with its output captured.
pub fn start(cmd: &mut Command) -> Launcher {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drover launch starts");
    let stderr = collect(child.stderr.take().unwrap());
    let stdout = collect(child.stdout.take().unwrap());
    Launcher {
        child,
        stderr,
        stdout,
        status: None,
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Launcher {
    /// The launcher's own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Its stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits for a stderr line containing `needle`; panics with the output after `limit`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_until(limit, &format!("a line with {needle:?}"), |l| {
            l.stderr
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.contains(needle))
                .cloned()
        })
    }

    /// Waits for `n` stderr lines containing `needle`.
    pub fn wait_for_count(&mut self, needle: &str, n: usize, limit: Duration) {
        self.wait_until(limit, &format!("{n} lines with {needle:?}"), |l| {
            (l.stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.contains(needle))
                .count()
                >= n)
                .then_some(())
        });
    }

    /// Waits for the first stdout line.
    pub fn wait_stdout(&mut self, limit: Duration) -> String {
        self.wait_until(limit, "a line on stdout", |l| {
            l.stdout.lock().unwrap().first().cloned()
        })
    }

    fn wait_until<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader threads may still hold the last lines.
                std::thread::sleep(Duration::from_millis(200));
                if let Some(v) = f(self) {
                    return v;
                }
                self.status = Some(status);
                panic!(
                    "drover launch exited ({status}) before {what}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Instance index → every pid started for it, in order, from the
    /// `[i] name starting (pid N)` and `restarting (pid N, …)` lines.
    pub fn instance_pids(&self) -> BTreeMap<usize, Vec<u32>> {
        let mut out: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for line in self.stderr.lock().unwrap().iter() {
            let Some(rest) = line.strip_prefix("drover launch: [") else {
                continue;
            };
            let Some((index, rest)) = rest.split_once(']') else {
                continue;
            };
            let Some(after) = rest
                .split(" starting (pid ")
                .nth(1)
                .or_else(|| rest.split(" restarting (pid ").nth(1))
            else {
                continue;
            };
            let pid: String = after.chars().take_while(char::is_ascii_digit).collect();
            out.entry(index.parse().unwrap())
                .or_default()
                .push(pid.parse().unwrap());
        }
        out
    }

    /// Every pid it started.
    pub fn all_pids(&self) -> Vec<u32> {
        self.instance_pids().into_values().flatten().collect()
    }

    /// Sends `signal` (a `kill` name: TERM, INT, KILL) to the launcher.
    pub fn signal(&self, signal: &str) {
        send(self.pid(), signal);
    }

    /// Waits for it to exit; panics with its output after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                // Let the readers drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "drover launch still running after {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let pids = self.all_pids();
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `kill -SIGNAL pid`.
pub fn send(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill -{signal} {pid} failed");
}

/// Live processes (not zombies) that are in one of `groups` or are one of them: what a fleet
/// left behind. Each instance leads its own group, so this finds its own children too.
pub fn leftovers(groups: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (state, pgrp) = (fields[0], fields[2].parse::<u32>().unwrap_or(0));
        if state != "Z" && state != "X" && (groups.contains(&pgrp) || groups.contains(&pid)) {
            found.push(stat.trim().chars().take(120).collect());
        }
    }
    found
}

/// Waits (briefly) until nothing of `groups` is alive; panics naming what is.
pub fn assert_no_leftovers(groups: &[u32], within: Duration) {
    assert!(
        !groups.is_empty(),
        "no pids recorded: the status lines changed?"
    );
    let deadline = Instant::now() + within;
    loop {
        let left = leftovers(groups);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of a JSONL file (0 when it does not exist yet).
pub fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
