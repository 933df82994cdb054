//! The life of each instance, on the supervisor thread: start, wait until ready, watch, restart
//! with backoff after a crash; and the fleet's readiness as a whole.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant, SystemTime};

use drover_client::{BackendAddr, Client};
use nix::sys::signal::Signal;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffState;
use crate::error::{LaunchError, StartFailure};
use crate::event::{Event, ExitInfo};
use crate::fleet::{FleetSpec, Registry, Teardown};
use crate::plan::InstanceSpec;
use crate::process::{self, Proc};
use crate::{logs, probe, teardown};

/// How often a ready instance is checked for having exited.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// What the supervisor works with.
pub(crate) struct Ctx {
    pub(crate) spec: FleetSpec,
    pub(crate) client: Client,
    pub(crate) cancel: CancellationToken,
    pub(crate) registry: Registry,
    pub(crate) emit: Box<dyn Fn(Event) + Send>,
}

/// One instance's first start-up, as reported to the fleet.
type StartReport = (usize, Result<(), StartFailure>);

/// Runs every instance until the fleet is stopped, reports readiness once on `ready`, then
/// tears down whatever is still running.
pub(crate) async fn run(ctx: Ctx, ready: SyncSender<Result<(), LaunchError>>) -> Teardown {
    let (tx, mut rx) = unbounded_channel::<StartReport>();
    let instances = futures::future::join_all(
        ctx.spec
            .instances
            .iter()
            .map(|s| instance(&ctx, s, tx.clone())),
    );
    drop(tx);
    let count = ctx.spec.instances.len();
    let readiness = async {
        let mut ready_count = 0;
        let result = loop {
            tokio::select! {
                biased;
                report = rx.recv() => match report {
                    Some((_, Ok(()))) => {
                        ready_count += 1;
                        if ready_count == count {
                            break Ok(());
                        }
                    }
                    Some((index, Err(why))) => {
                        let name = ctx.spec.instances[index].name.clone();
                        break Err(LaunchError::StartFailed { index, name, why });
                    }
                    None => break Err(LaunchError::Stopped),
                },
                () = ctx.cancel.cancelled() => break Err(LaunchError::Stopped),
            }
        };
        // The receiver may be gone (nobody waits): nothing to tell then.
        let _ = ready.try_send(result);
    };
    let (procs, ()) = futures::join!(instances, readiness);
    let live = procs
        .into_iter()
        .zip(&ctx.spec.instances)
        .filter_map(|(p, s)| p.map(|p| (s.slot.index, s.name.clone(), p)))
        .collect();
    teardown::stop_all(&ctx, live).await
}

/// How a start went.
enum Startup {
    Ready(Duration),
    Exited(ExitInfo),
    TimedOut,
    Cancelled,
}

/// One instance's loop. Returns its process if one is still running when the fleet stops.
async fn instance(
    ctx: &Ctx,
    spec: &InstanceSpec,
    started: UnboundedSender<StartReport>,
) -> Option<Proc> {
    let index = spec.slot.index;
    let log = ctx.spec.log_dir.join(format!("{}.log", spec.name));
    let addr = BackendAddr::parse(&spec.url).expect("instance URLs are built well-formed");
    let mut backoff = BackoffState::new(ctx.spec.backoff);
    let first_failed = |why: StartFailure, tail: Vec<String>| {
        (ctx.emit)(Event::StartFailed {
            index,
            name: spec.name.clone(),
            why: why.clone(),
            log_tail: tail,
            log: log.clone(),
            command: spec.command.to_string(),
        });
        let _ = started.send((index, Err(why)));
    };
    let mut attempt = 0u32;
    loop {
        if ctx.cancel.is_cancelled() {
            return None;
        }
        let header = format!(
            "==> drover launch: {} start #{} at {}: {}",
            spec.name,
            attempt + 1,
            humantime::format_rfc3339_seconds(SystemTime::now()),
            spec.command
        );
        let mut proc =
            match process::spawn(&spec.command, &log, &header, ctx.spec.parent_death_signal) {
                Ok(p) => p,
                Err(e) => {
                    let why = StartFailure::Spawn {
                        error: format!("{}: {e}", spec.command.program.display()),
                        hint: spec.spawn_hint.clone(),
                    };
                    if attempt == 0 {
                        first_failed(why, Vec::new());
                        return None;
                    }
                    let ok = crashed(
                        ctx,
                        spec,
                        &log,
                        &mut backoff,
                        0,
                        why.to_string(),
                        Duration::ZERO,
                        Vec::new(),
                    )
                    .await;
                    if !ok {
                        return None;
                    }
                    attempt += 1;
                    continue;
                }
            };
        ctx.registry.insert(index, proc.pid);
        (ctx.emit)(Event::Starting {
            index,
            name: spec.name.clone(),
            pid: proc.pid,
            attempt,
            command: spec.command.to_string(),
        });
        match await_ready(ctx, &mut proc, &addr).await {
            Startup::Ready(after) => {
                (ctx.emit)(Event::Ready {
                    index,
                    name: spec.name.clone(),
                    pid: proc.pid,
                    attempt,
                    after,
                });
                if attempt == 0 {
                    let _ = started.send((index, Ok(())));
                }
            }
            Startup::Cancelled => return Some(proc),
            Startup::Exited(exit) => {
                let tail = logs::tail(&log, proc.log_from, logs::TAIL_LINES);
                let (pid, up_for) = (proc.pid, proc.started.elapsed());
                finish(ctx, index, proc);
                if attempt == 0 {
                    first_failed(StartFailure::Exited(exit), tail);
                    return None;
                }
                let why = format!("exited ({exit}) before it was ready again");
                if !crashed(ctx, spec, &log, &mut backoff, pid, why, up_for, tail).await {
                    return None;
                }
                attempt += 1;
                continue;
            }
            Startup::TimedOut => {
                let tail = logs::tail(&log, proc.log_from, logs::TAIL_LINES);
                if attempt == 0 {
                    // Still running: it is stopped with the rest of the fleet.
                    first_failed(StartFailure::TimedOut(ctx.spec.ready_timeout), tail);
                    return Some(proc);
                }
                let (pid, up_for) = (proc.pid, proc.started.elapsed());
                teardown::stop_all(ctx, vec![(index, spec.name.clone(), proc)]).await;
                let why = format!(
                    "not ready again within {}",
                    humantime::format_duration(ctx.spec.ready_timeout)
                );
                if !crashed(ctx, spec, &log, &mut backoff, pid, why, up_for, tail).await {
                    return None;
                }
                attempt += 1;
                continue;
            }
        }
        match await_exit(ctx, &mut proc).await {
            None => return Some(proc),
            Some(exit) => {
                let tail = logs::tail(&log, proc.log_from, logs::TAIL_LINES);
                let (pid, up_for) = (proc.pid, proc.started.elapsed());
                finish(ctx, index, proc);
                if !crashed(
                    ctx,
                    spec,
                    &log,
                    &mut backoff,
                    pid,
                    format!("exited ({exit})"),
                    up_for,
                    tail,
                )
                .await
                {
                    return None;
                }
                attempt += 1;
            }
        }
    }
}

/// Reports a crash and waits out the backoff; false if the fleet was stopped meanwhile.
#[allow(clippy::too_many_arguments)]
async fn crashed(
    ctx: &Ctx,
    spec: &InstanceSpec,
    log: &std::path::Path,
    backoff: &mut BackoffState,
    pid: u32,
    why: String,
    up_for: Duration,
    log_tail: Vec<String>,
) -> bool {
    let restart_in = backoff.after_crash(up_for);
    (ctx.emit)(Event::Crashed {
        index: spec.slot.index,
        name: spec.name.clone(),
        pid,
        why,
        up_for,
        restart_in,
        log_tail,
        log: PathBuf::from(log),
    });
    tokio::select! {
        () = ctx.cancel.cancelled() => false,
        () = tokio::time::sleep(restart_in) => true,
    }
}

/// Kills what is left of an exited instance's process group (workers it started hold GPU memory
/// and maybe its port), then reaps it.
fn finish(ctx: &Ctx, index: usize, proc: Proc) {
    proc.signal_group(Signal::SIGKILL);
    ctx.registry.remove(index);
    proc.reap();
}

async fn await_ready(ctx: &Ctx, proc: &mut Proc, addr: &BackendAddr) -> Startup {
    let deadline = proc.started + ctx.spec.ready_timeout;
    loop {
        if let Some(exit) = proc.exited() {
            return Startup::Exited(exit);
        }
        let ready = tokio::select! {
            () = ctx.cancel.cancelled() => return Startup::Cancelled,
            ready = probe::ready(&ctx.client, addr) => ready,
        };
        if ready {
            // Answers from a process that has just exited came from someone else on that port.
            if let Some(exit) = proc.exited() {
                return Startup::Exited(exit);
            }
            return Startup::Ready(proc.started.elapsed());
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => return Startup::Cancelled,
            () = tokio::time::sleep(ctx.spec.probe_interval) => {}
        }
    }
}

/// Waits for a ready instance to exit; `None` when the fleet is stopped first.
async fn await_exit(ctx: &Ctx, proc: &mut Proc) -> Option<ExitInfo> {
    loop {
        if let Some(exit) = proc.exited() {
            return Some(exit);
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => return None,
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
    }
}
