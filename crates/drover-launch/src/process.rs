//! One child process: started without a shell, in a process group of its own, its output in
//! its log; watched for exit *without reaping it* until its group has been dealt with.
//!
//! Why not reap at once: a process group is signalled by number, and the number stays ours only
//! while its leader is a zombie. Reaping first and then sending SIGKILL to the group could hit a
//! stranger that got the recycled number. So the exit is observed with `waitid(WNOWAIT)`, the
//! rest of the group is killed, and only then is the leader reaped.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::command::CommandLine;
use crate::event::ExitInfo;
use crate::logs;

/// A running (or exited, not yet reaped) child.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    /// Its pid, which is also its process group id.
    pub(crate) pid: u32,
    /// When it was spawned.
    pub(crate) started: Instant,
    /// Where its own output starts in the log.
    pub(crate) log_from: u64,
}

/// Starts `cmd` in a new process group, stdin from /dev/null, stdout and stderr appended to
/// `log` after a `header` line. With `parent_death` (Linux), the kernel sends it SIGTERM if the
/// thread calling this dies: the backstop for a drover killed with SIGKILL, which runs no
/// cleanup of its own.
pub(crate) fn spawn(
    cmd: &CommandLine,
    log: &Path,
    header: &str,
    parent_death: bool,
) -> io::Result<Proc> {
    let (out, log_from) = logs::open(log, header)?;
    let err = out.try_clone()?;
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Ctrl-C in a terminal goes to the foreground group: the instances must not get it
        // directly, or they would die before drover can finish a job on them and stop them in
        // order. Their own group also lets teardown reach every process they started.
        command.process_group(0);
    }
    if parent_death {
        set_parent_death_signal(&mut command);
    }
    let child = command.spawn()?;
    Ok(Proc {
        pid: child.id(),
        child,
        started: Instant::now(),
        log_from,
    })
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_parent_death_signal(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two system calls
    // (prctl, getppid): async-signal-safe, no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            // The parent may have died between fork and prctl; the signal would never come.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_command: &mut Command) {}

impl Proc {
    /// How it ended, if it has; does not reap it (see the module docs).
    pub(crate) fn exited(&mut self) -> Option<ExitInfo> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(self.pid()), flags) {
                Ok(WaitStatus::Exited(_, code)) => Some(ExitInfo::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(ExitInfo::Signal(sig as i32)),
                Ok(_) => None,
                // EINVAL: a status nix cannot represent (a real-time signal); ECHILD: reaped
                // elsewhere. Either way it has ended.
                Err(_) => Some(ExitInfo::Unknown),
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        {
            // Without waitid the status is only read by reaping; fine where this is a fallback.
            self.child.try_wait().ok().flatten().map(exit_info)
        }
    }

    /// Sends `signal` to its whole process group (nothing if the group is gone).
    pub(crate) fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    /// Reaps it. Call only once [`Proc::exited`] said it ended (it blocks otherwise).
    pub(crate) fn reap(mut self) -> ExitInfo {
        match self.child.wait() {
            Ok(status) => exit_info(status),
            Err(_) => ExitInfo::Unknown,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }
}

/// Sends `signal` to process group `pgid`; a group that is already gone is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return ExitInfo::Signal(sig);
        }
    }
    status.code().map_or(ExitInfo::Unknown, ExitInfo::Code)
}

/// Process groups that still have a live (non-zombie) member, from `/proc`. `None` where there
/// is no `/proc`: then only each leader's own exit is known.
pub(crate) fn live_groups() -> Option<std::collections::HashSet<u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let mut groups = std::collections::HashSet::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((state, pgrp)) = parse_stat(&stat)
            && state != 'Z'
            && state != 'X'
        {
            groups.insert(pgrp);
        }
    }
    Some(groups)
}

/// State and process group from `/proc/PID/stat` (`pid (comm) state ppid pgrp …`; `comm` may
/// contain spaces and parentheses, so fields are counted from the last `)`).
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_odd_names() {
        assert_eq!(parse_stat("42 (a) b (c)) S 1 42 42 0"), Some(('S', 42)));
        assert_eq!(parse_stat("7 (x) Z 1 9"), Some(('Z', 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exit_is_seen_without_reaping_and_the_group_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let cmd = CommandLine::new("sh").args(["-c", "echo hello; exit 3"]);
        let mut p = spawn(&cmd, &log, "== t", true).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let exit = loop {
            if let Some(e) = p.exited() {
                break e;
            }
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(exit, ExitInfo::Code(3));
        // Still a zombie: the pid (and so the group number) is still ours.
        assert!(std::path::Path::new(&format!("/proc/{}", p.pid)).exists());
        assert_eq!(
            p.exited(),
            Some(ExitInfo::Code(3)),
            "observing twice is fine"
        );
        let from = p.log_from;
        assert_eq!(p.reap(), ExitInfo::Code(3));
        assert_eq!(logs::tail(&log, from, 5), ["hello"]);
    }
}
