//! This node's lease, as the rest of the process sees it: held or not.
//!
//! The lease is renewed in the database (its clock decides when it runs
//! out for the others); locally the node keeps a deadline on the monotonic
//! clock, shorter than the lease by a margin: past it without a renewal,
//! the node behaves as if it had lost every account, so that by the time
//! another node may claim them this one has stopped writing and pushing.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this node may act for the accounts it owns. A single process
/// (sled) always may.
#[derive(Clone, Debug)]
pub struct LeaseGate {
    held: watch::Receiver<bool>,
}

impl LeaseGate {
    /// A gate that is always open (one process owns everything).
    pub fn always() -> LeaseGate {
        let (tx, held) = watch::channel(true);
        // The sender is dropped: the value stays `true` for good.
        drop(tx);
        LeaseGate { held }
    }

    /// A closed gate and the sender that opens and closes it.
    pub fn new() -> (watch::Sender<bool>, LeaseGate) {
        let (tx, held) = watch::channel(false);
        (tx, LeaseGate { held })
    }

    /// The gate a sender opens and closes.
    pub fn of(held: watch::Receiver<bool>) -> LeaseGate {
        LeaseGate { held }
    }

    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }
}

/// The local deadline after a renewal sent at `sent` succeeded: the lease
/// runs `ttl` from a moment after `sent` on the database clock; `margin`
/// covers a pause between the check and an action.
pub fn local_deadline(sent: Instant, ttl: Duration, margin: Duration) -> Instant {
    sent + ttl.saturating_sub(margin)
}

/// The margin kept below the lease's end: a fifth of it.
pub fn margin(ttl: Duration) -> Duration {
    ttl / 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_ends_before_the_lease_from_the_moment_the_renewal_was_sent() {
        let sent = Instant::now();
        let ttl = Duration::from_secs(15);
        let deadline = local_deadline(sent, ttl, margin(ttl));
        assert_eq!(deadline - sent, Duration::from_secs(12));
    }

    #[test]
    fn an_always_open_gate_is_held_and_a_new_one_opens_with_its_sender() {
        assert!(LeaseGate::always().is_held());
        let (lease, gate) = LeaseGate::new();
        assert!(!gate.is_held());
        lease.send_replace(true);
        assert!(gate.is_held());
    }
}
