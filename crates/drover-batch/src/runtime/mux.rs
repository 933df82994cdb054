//! The fair multiplexer: one dispatcher input, fed round robin from every active batch.
//!
//! Each batch has a lane (a small channel its reader thread fills). The mux takes one task
//! from the next lane that has one, waits for room in the dispatcher's bounded input, and
//! hands it over; then the next lane. A batch of a million lines and one of ten therefore
//! get the same share of dispatch slots while both have work, and neither waits for the other
//! to be read. The dispatcher's input and look-ahead are kept small (see `runtime`), so what
//! is queued there — the only place where batches are not interleaved — is a few hundred tasks.
//!
//! A lane is removed on request (cancel, expiry): once the removal is acknowledged, the mux
//! hands over no more of that batch's tasks, and `handed` says how many it did. A task taken
//! from a lane but not yet handed over when its lane is removed is dropped: it was never sent,
//! and its line has no result, which is what a cancelled or expired request is.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use drover_types::Task;
use tokio::sync::{mpsc, oneshot};

/// Requests to the mux.
pub(crate) enum MuxCmd {
    /// A new lane for batch slot `slot`; `handed` counts the tasks handed to the dispatcher.
    Add {
        /// The batch's slot (`Task::group`).
        slot: u32,
        /// Its tasks.
        lane: mpsc::Receiver<Task>,
        /// Incremented for each task handed over.
        handed: Arc<AtomicU64>,
    },
    /// Stop taking the slot's tasks; `ack` fires once none more will be handed over.
    Remove {
        /// The batch's slot.
        slot: u32,
        /// Acknowledgement.
        ack: oneshot::Sender<()>,
    },
}

struct Lane {
    slot: u32,
    rx: mpsc::Receiver<Task>,
    handed: Arc<AtomicU64>,
}

/// Runs until the dispatcher's input closes or every command sender is gone.
pub(crate) async fn run(mut ctl: mpsc::UnboundedReceiver<MuxCmd>, out: mpsc::Sender<Task>) {
    let mut lanes: Vec<Lane> = Vec::new();
    let mut cursor = 0usize;
    loop {
        let (slot, handed, task) = tokio::select! {
            biased;
            cmd = ctl.recv() => match cmd {
                Some(cmd) => { apply(&mut lanes, cmd); continue; }
                None => return,
            },
            next = next_task(&mut lanes, &mut cursor), if !lanes.is_empty() => next,
        };
        // Hold the task until the dispatcher has room, still answering commands meanwhile.
        loop {
            tokio::select! {
                biased;
                cmd = ctl.recv() => match cmd {
                    Some(cmd) => {
                        let removed = matches!(&cmd, MuxCmd::Remove { slot: s, .. } if *s == slot);
                        apply(&mut lanes, cmd);
                        if removed {
                            break;
                        }
                    }
                    None => return,
                },
                permit = out.reserve() => match permit {
                    Ok(permit) => {
                        handed.fetch_add(1, Ordering::SeqCst);
                        permit.send(task);
                        break;
                    }
                    Err(_) => return,
                },
            }
        }
    }
}

fn apply(lanes: &mut Vec<Lane>, cmd: MuxCmd) {
    match cmd {
        MuxCmd::Add { slot, lane, handed } => lanes.push(Lane {
            slot,
            rx: lane,
            handed,
        }),
        MuxCmd::Remove { slot, ack } => {
            // Dropping the receiver also stops the batch's reader (its next send fails).
            lanes.retain(|l| l.slot != slot);
            let _ = ack.send(());
        }
    }
}

/// The next task in round-robin order over the lanes. A lane whose reader finished is removed.
async fn next_task(lanes: &mut Vec<Lane>, cursor: &mut usize) -> (u32, Arc<AtomicU64>, Task) {
    poll_fn(|cx| {
        let mut i = 0;
        while i < lanes.len() {
            let idx = (*cursor + i) % lanes.len();
            match lanes[idx].rx.poll_recv(cx) {
                Poll::Ready(Some(task)) => {
                    let lane = &lanes[idx];
                    *cursor = idx + 1;
                    return Poll::Ready((lane.slot, lane.handed.clone(), task));
                }
                Poll::Ready(None) => {
                    lanes.remove(idx);
                    if lanes.is_empty() {
                        break;
                    }
                    // The lane that followed now sits at idx: look at it next, without moving on.
                    *cursor = idx % lanes.len();
                    i = 0;
                    continue;
                }
                Poll::Pending => i += 1,
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc as StdArc;

    use bytes::Bytes;
    use drover_types::Endpoint;

    fn task(group: u32, line: u64) -> Task {
        Task {
            line,
            custom_id: StdArc::from(format!("{group}-{line}")),
            endpoint: Endpoint::ChatCompletions,
            body: Bytes::from_static(b"{}"),
            prompt_tokens_est: 1,
            max_tokens: None,
            group,
        }
    }

    fn lane(ctl: &mpsc::UnboundedSender<MuxCmd>, slot: u32, n: u64) -> StdArc<AtomicU64> {
        let (tx, rx) = mpsc::channel(n as usize + 1);
        for i in 0..n {
            tx.try_send(task(slot, i)).unwrap();
        }
        let handed = StdArc::new(AtomicU64::new(0));
        ctl.send(MuxCmd::Add {
            slot,
            lane: rx,
            handed: handed.clone(),
        })
        .unwrap();
        handed
    }

    #[tokio::test]
    async fn lanes_take_turns() {
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (out, mut out_rx) = mpsc::channel(1);
        let a = lane(&ctl, 1, 30);
        let b = lane(&ctl, 2, 10);
        let c = lane(&ctl, 3, 10);
        let mux = tokio::spawn(run(ctl_rx, out));
        let mut order = Vec::new();
        for _ in 0..50 {
            order.push(out_rx.recv().await.unwrap().group);
        }
        // While all three have work, each gets every third slot.
        for window in order[..30].chunks(3) {
            let mut w = window.to_vec();
            w.sort();
            assert_eq!(w, [1, 2, 3], "{order:?}");
        }
        assert!(order[30..].iter().all(|&g| g == 1), "{order:?}");
        assert_eq!(
            (
                a.load(Ordering::SeqCst),
                b.load(Ordering::SeqCst),
                c.load(Ordering::SeqCst)
            ),
            (30, 10, 10)
        );
        drop(ctl);
        mux.await.unwrap();
    }

    #[tokio::test]
    async fn a_removed_lane_hands_over_nothing_more() {
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (out, mut out_rx) = mpsc::channel(1);
        let a = lane(&ctl, 1, 20);
        let _mux = tokio::spawn(run(ctl_rx, out));
        let _ = out_rx.recv().await.unwrap();
        // The mux now holds a second task, waiting for room.
        let (ack, acked) = oneshot::channel();
        ctl.send(MuxCmd::Remove { slot: 1, ack }).unwrap();
        acked.await.unwrap();
        let handed = a.load(Ordering::SeqCst);
        let mut received = 1;
        while let Ok(Some(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), out_rx.recv()).await
        {
            received += 1;
        }
        assert_eq!(
            received, handed,
            "every task counted as handed arrived, and no more"
        );
        assert!(handed < 20);
    }
}
