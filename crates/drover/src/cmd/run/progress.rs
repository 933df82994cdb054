//! What a person sees while a job runs: a progress bar on a terminal (the seed's tqdm line,
//! with in-flight counts per backend), plain periodic lines otherwise, and dispatcher events.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_job::Progress;
use drover_sched::{DispatchEvent, FleetSnapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, oneshot};

/// A running display; [`Display::finish`] clears it.
pub struct Display {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Display {
    /// Starts the display. `label` is the mode, as the seed showed it (`analyze [concurrent]`).
    pub fn start(
        label: String,
        progress: Arc<Progress>,
        snapshot: Arc<Mutex<FleetSnapshot>>,
        mut events: mpsc::UnboundedReceiver<DispatchEvent>,
        quiet: bool,
    ) -> Display {
        let (stop, mut stopped) = oneshot::channel();
        let tty = std::io::stderr().is_terminal() && !quiet;
        let task = tokio::spawn(async move {
            let bar = tty.then(|| make_bar(&label));
            let started = Instant::now();
            let mut last_plain = Instant::now();
            let mut tick =
                tokio::time::interval(Duration::from_millis(if tty { 150 } else { 1000 }));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    Some(e) = events.recv() => {
                        let line = describe(&e);
                        match &bar {
                            Some(b) => b.println(line),
                            None => eprintln!("{line}"),
                        }
                    }
                    _ = tick.tick() => {
                        let snap = snapshot.lock().expect("snapshot lock").clone();
                        match &bar {
                            Some(b) => update_bar(b, &progress, &snap),
                            None if !quiet && last_plain.elapsed() >= Duration::from_secs(10) => {
                                last_plain = Instant::now();
                                eprintln!("{}", plain_line(&label, &progress, &snap, started.elapsed()));
                            }
                            None => {}
                        }
                    }
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            // Events raised in the last moments still deserve a line.
            while let Ok(e) = events.try_recv() {
                eprintln!("{}", describe(&e));
            }
        });
        Display {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops and clears the display.
    pub async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

fn make_bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(8));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {percent:>3}%|{wide_bar}| {pos}/{len} [{elapsed}<{eta}, {per_sec}, {msg}]",
        )
        .expect("valid template")
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    bar.set_prefix(format!("drover [{label}]:"));
    bar
}

fn update_bar(bar: &ProgressBar, p: &Progress, snap: &FleetSnapshot) {
    let total = p.total.load(Ordering::Relaxed);
    let done = p.done();
    bar.set_length(total.max(done));
    bar.set_position(done);
    bar.set_message(format!(
        "ok={}, failed={}, {}",
        p.ok.load(Ordering::Relaxed),
        p.failed.load(Ordering::Relaxed),
        in_flight(snap, 4)
    ));
}

/// `in flight 200 (8001:64/64 8002:70/72 …)`, showing at most `max` backends.
fn in_flight(snap: &FleetSnapshot, max: usize) -> String {
    let per: Vec<String> = snap
        .backends
        .iter()
        .filter(|b| b.in_flight > 0 || b.state == drover_sched::BackendState::Up)
        .take(max)
        .map(|b| {
            let name = b
                .label
                .rsplit(':')
                .next()
                .filter(|_| b.label.starts_with("127.0.0.1"))
                .unwrap_or(&b.label);
            let state = if b.state == drover_sched::BackendState::Up {
                String::new()
            } else {
                format!(" {}", b.state.name())
            };
            match b.limit {
                Some(l) => format!("{name}:{}/{l}{state}", b.in_flight),
                None => format!("{name}:{}{state}", b.in_flight),
            }
        })
        .collect();
    let more = snap.backends.len().saturating_sub(per.len());
    let more = if more > 0 {
        format!(" +{more}")
    } else {
        String::new()
    };
    format!("in flight {} ({}{more})", snap.in_flight, per.join(" "))
}

fn plain_line(label: &str, p: &Progress, snap: &FleetSnapshot, elapsed: Duration) -> String {
    let done = p.done();
    let total = p.total.load(Ordering::Relaxed);
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let pct = if total > 0 {
        format!(" ({:.0}%)", 100.0 * done as f64 / total as f64)
    } else {
        String::new()
    };
    let eta = if total > done && rate > 0.0 {
        format!(
            ", eta {}",
            drover_stats::summary::fmt_secs((total - done) as f64 / rate)
        )
    } else {
        String::new()
    };
    format!(
        "drover [{label}]: {done}/{}{pct} in {}, {rate:.1} tasks/s, ok={}, failed={}, {}{eta}",
        if total > 0 {
            total.to_string()
        } else {
            "?".into()
        },
        drover_stats::summary::fmt_secs(elapsed.as_secs_f64()),
        p.ok.load(Ordering::Relaxed),
        p.failed.load(Ordering::Relaxed),
        in_flight(snap, 8),
    )
}

fn describe(e: &DispatchEvent) -> String {
    match e {
        DispatchEvent::Ejected { backend, reason } => format!("drover: backend {backend} taken out of rotation ({reason}); its tasks go to the others, it is probed until it answers again"),
        DispatchEvent::Readmitted { backend } => format!("drover: backend {backend} is back"),
        DispatchEvent::AllDown { max_wait } => format!(
            "drover: every backend is down; dispatch is paused and waits up to {} (--max-wait) for one to come back",
            humantime::format_duration(*max_wait)
        ),
        DispatchEvent::Recovered => "drover: a backend is back; dispatch resumes".to_string(),
        DispatchEvent::GaveUp => "drover: no backend came back within --max-wait; the remaining tasks are recorded as failed (no_backend)".to_string(),
        DispatchEvent::Joined { backend } => format!("drover: backend {backend} joined"),
        DispatchEvent::Left { backend } => format!("drover: backend {backend} left; finishing its requests in flight"),
    }
}
