//! Ctrl-C and SIGTERM: the first stops intake and lets requests in flight finish for up to
//! `--grace`; the second exits at once. Both leave a consistent, resumable output.

use std::io::Write;
use std::time::Duration;

use drover_sched::Control;

/// Watches for interrupts for the rest of the run.
pub fn watch(control: Control, grace: Duration, resume_hint: String) {
    tokio::spawn(async move {
        interrupted().await;
        // `writeln!`, not `eprintln!`: a closed stderr (the terminal went away with the
        // SIGHUP/SIGTERM) must not panic the task that lets the job end cleanly.
        let _ = writeln!(
            std::io::stderr(),
            "\ndrover: interrupted: no new tasks; waiting up to {} for requests in flight (Ctrl-C again to quit now)",
            humantime::format_duration(grace)
        );
        control.stop_intake.cancel();
        let abort = control.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
        interrupted().await;
        // Every line already in the output is whole; tasks without a line are redone on resume.
        let _ = writeln!(
            std::io::stderr(),
            "drover: interrupted again: exiting now; resume with:\n  {resume_hint}"
        );
        std::process::exit(i32::from(crate::exit::INTERRUPTED));
    });
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
