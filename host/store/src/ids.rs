//! Row ids made by the host, the same way on both back ends.
//!
//! An id is 63 bits: milliseconds since 2025-01-01 (41 bits, good for 69
//! years), a random per-process node number (10 bits) and a per-millisecond
//! sequence (12 bits). Ids from one process never repeat and grow with
//! time, which keeps SQLite's B-trees appending; two processes collide only
//! if they drew the same node number and made an id in the same millisecond
//! with the same sequence, and then the unique key refuses the second row.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const EPOCH_MS: u64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

struct State {
    node: u64,
    last_ms: u64,
    seq: u64,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(State {
            node: rand::random::<u64>() & ((1 << NODE_BITS) - 1),
            last_ms: 0,
            seq: 0,
        })
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_sub(EPOCH_MS)
}

/// A new id, unique in this process and increasing.
pub fn next_id() -> i64 {
    let mut s = state().lock().unwrap_or_else(|p| p.into_inner());
    let mut ms = now_ms().max(s.last_ms);
    if ms == s.last_ms {
        s.seq += 1;
        if s.seq >> SEQ_BITS != 0 {
            // 4096 ids in one millisecond: borrow the next one.
            ms += 1;
            s.seq = 0;
        }
    } else {
        s.seq = 0;
    }
    s.last_ms = ms;
    ((ms << (NODE_BITS + SEQ_BITS)) | (s.node << SEQ_BITS) | s.seq) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_never_repeat() {
        let mut last = 0;
        for _ in 0..100_000 {
            let id = next_id();
            assert!(id > last, "{id} after {last}");
            last = id;
        }
    }
}
