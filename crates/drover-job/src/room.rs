//! Sending from a blocking reader thread into a bounded tokio channel, taking room a batch at a
//! time.
//!
//! A reader that keeps the dispatcher's queue full with `blocking_send` finds the queue full
//! after every task: each task the dispatcher takes wakes the reader (a futex wake and two
//! context switches) to parse one line and block again. At 40,000 tasks/s that was ~0.4 wakes
//! per task on the reader alone (docs/benchmarks.md, #10). [`RoomSender`] instead waits until
//! the queue has room for a whole batch, so the reader wakes once per batch; each value still
//! goes out the moment it is sent, so a producer trickling tasks into stdin sees no delay.

use tokio::sync::mpsc::{self, PermitIterator};

/// Most slots taken at once.
pub const BATCH: usize = 64;

/// A blocking sender over `tx` that waits for room a batch at a time.
pub struct RoomSender<'a, T> {
    tx: &'a mpsc::Sender<T>,
    batch: usize,
    room: Option<PermitIterator<'a, T>>,
}

impl<'a, T> RoomSender<'a, T> {
    /// A sender over `tx`. Batches are [`BATCH`] slots, or a quarter of a smaller channel's
    /// capacity, so the receiver never drains the queue while the reader waits for room.
    pub fn new(tx: &'a mpsc::Sender<T>) -> Self {
        RoomSender {
            tx,
            batch: BATCH.min(tx.max_capacity() / 4).max(1),
            room: None,
        }
    }

    /// Sends `value` now, first waiting for room for a batch when the last batch's room is
    /// used up. Must not be called on an async runtime's thread (it blocks). `Err(value)`:
    /// the receiver is gone.
    pub fn send(&mut self, value: T) -> Result<(), T> {
        if self.tx.is_closed() {
            return Err(value);
        }
        let permit = match self.room.as_mut().and_then(Iterator::next) {
            Some(p) => p,
            None => {
                self.room = None;
                match futures::executor::block_on(self.tx.reserve_many(self.batch)) {
                    Ok(mut room) => {
                        let p = room.next().expect("reserve_many(n ≥ 1) yields n permits");
                        self.room = Some(room);
                        p
                    }
                    Err(_) => return Err(value),
                }
            }
        };
        permit.send(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_value_is_received_as_soon_as_it_is_sent() {
        let (tx, mut rx) = mpsc::channel(256);
        let mut s = RoomSender::new(&tx);
        for i in 0..200 {
            s.send(i).unwrap();
            assert_eq!(rx.try_recv(), Ok(i), "value {i} was held back");
        }
    }

    #[test]
    fn a_full_channel_resumes_once_a_batch_of_room_is_free() {
        // Capacity 16: batches of 4.
        let (tx, mut rx) = mpsc::channel::<u32>(16);
        let sent = std::thread::spawn(move || {
            let mut s = RoomSender::new(&tx);
            for i in 0..100 {
                s.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 100 {
            assert!(std::time::Instant::now() < deadline, "stuck after {got:?}");
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        sent.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_receiver_hands_the_value_back() {
        let (tx, rx) = mpsc::channel(8);
        let mut s = RoomSender::new(&tx);
        s.send(1).unwrap();
        drop(rx);
        assert_eq!(s.send(2), Err(2));
    }

    #[test]
    fn the_batch_is_at_most_a_quarter_of_a_small_channel() {
        let (tx, _rx) = mpsc::channel::<u8>(64);
        assert_eq!(RoomSender::new(&tx).batch, 16);
        let (tx, _rx) = mpsc::channel::<u8>(2);
        assert_eq!(RoomSender::new(&tx).batch, 1);
        let (tx, _rx) = mpsc::channel::<u8>(4096);
        assert_eq!(RoomSender::new(&tx).batch, BATCH);
    }
}
