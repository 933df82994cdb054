//! Stopping instances: SIGTERM to each process group, up to the grace for the whole group to
//! exit, then SIGKILL to the groups still there; every leader reaped.
//!
//! A group counts as gone only when its leader has exited *and* (where `/proc` tells) no other
//! member is alive: vLLM's engine processes and tensor-parallel workers are in the group and
//! are what hold the GPU.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::event::{Event, StopOutcome};
use crate::fleet::Teardown;
use crate::process::{self, Proc};
use crate::supervise::Ctx;

/// How often teardown looks at what is left.
const POLL: Duration = Duration::from_millis(50);

/// After SIGKILL a process still needs to leave the kernel (a GPU driver call can keep it
/// a while); this long is waited for before giving up on reaping it.
const AFTER_KILL: Duration = Duration::from_secs(10);

/// Stops `procs` (index, name, process) and reports each on `ctx.emit`.
pub(crate) async fn stop_all(ctx: &Ctx, procs: Vec<(usize, String, Proc)>) -> Teardown {
    let mut report = Teardown::default();
    if procs.is_empty() {
        return report;
    }
    let grace = ctx.spec.grace;
    (ctx.emit)(Event::Stopping {
        count: procs.len(),
        grace,
    });
    for (_, _, p) in &procs {
        p.signal_group(Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut pending = procs;
    loop {
        let live = process::live_groups();
        let mut i = 0;
        while i < pending.len() {
            let p = &mut pending[i].2;
            let group_alive = live.as_ref().is_some_and(|g| g.contains(&p.pid));
            match p.exited() {
                Some(exit) if !group_alive => {
                    let (index, name, p) = pending.swap_remove(i);
                    let pid = p.pid;
                    ctx.registry.remove(index);
                    p.reap();
                    (ctx.emit)(Event::Stopped {
                        index,
                        name,
                        pid,
                        outcome: StopOutcome::Exited(exit),
                    });
                    report.stopped += 1;
                }
                _ => i += 1,
            }
        }
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for (_, _, p) in &pending {
        p.signal_group(Signal::SIGKILL);
    }
    let give_up = Instant::now() + AFTER_KILL;
    while !pending.is_empty() {
        let mut i = 0;
        while i < pending.len() {
            if pending[i].2.exited().is_some() {
                let (index, name, p) = pending.swap_remove(i);
                let pid = p.pid;
                ctx.registry.remove(index);
                p.reap();
                (ctx.emit)(Event::Stopped {
                    index,
                    name,
                    pid,
                    outcome: StopOutcome::Killed,
                });
                report.killed.push(pid);
            } else {
                i += 1;
            }
        }
        if Instant::now() >= give_up {
            // Unkillable for now (uninterruptible sleep); left to the kernel, and reported.
            for (index, name, p) in pending.drain(..) {
                (ctx.emit)(Event::Stopped {
                    index,
                    name,
                    pid: p.pid,
                    outcome: StopOutcome::Killed,
                });
                report.killed.push(p.pid);
                report.unreaped.push(p.pid);
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    report
}
