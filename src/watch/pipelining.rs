//! Which upstream hosts get pipelined commands (DONE, a command and IDLE in
//! one write). A host where a pipelined exchange failed the way a server
//! that mishandles pipelining would make it fail gets one command at a time.
//! That failure may also have been the network, so after a while one
//! connection tries pipelining again: if its exchange works, the host is
//! cleared; if not, the host waits twice as long before the next try.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between two tries of a host.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// How a connection to a host sends its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pipelined: the host has not failed, or its last try worked.
    Pipeline,
    /// One at a time.
    OneAtATime,
    /// Pipelined, as the one connection trying the host again; it reports
    /// with [`PipeliningHosts::probe_worked`], [`PipeliningHosts::failed`]
    /// or [`PipeliningHosts::probe_ended`].
    Probe,
}

#[derive(Debug)]
struct Mark {
    retry_at: Instant,
    wait: Duration,
    /// A connection is trying the host now.
    probing: bool,
}

/// The hosts that get one command at a time, shared by all actors.
#[derive(Debug)]
pub struct PipeliningHosts {
    first_wait: Duration,
    /// Whether any host is marked: the usual answer without the lock.
    any: AtomicBool,
    marked: Mutex<HashMap<String, Mark>>,
}

impl PipeliningHosts {
    /// A marked host is first tried again after `first_wait`.
    pub fn new(first_wait: Duration) -> Self {
        PipeliningHosts {
            first_wait,
            any: AtomicBool::new(false),
            marked: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mark>> {
        self.marked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How a connection to `host` sends now. At most one connection per
    /// host gets [`Verdict::Probe`] at a time.
    pub fn verdict(&self, host: &str) -> Verdict {
        if !self.any.load(Ordering::Acquire) {
            return Verdict::Pipeline;
        }
        let mut marked = self.lock();
        match marked.get_mut(&host.to_ascii_lowercase()) {
            None => Verdict::Pipeline,
            Some(mark) if !mark.probing && Instant::now() >= mark.retry_at => {
                mark.probing = true;
                Verdict::Probe
            }
            Some(_) => Verdict::OneAtATime,
        }
    }

    /// A pipelined exchange with `host` failed as a server that mishandles
    /// pipelining would make it fail. True when the host was not marked.
    pub fn failed(&self, host: &str) -> bool {
        let mut marked = self.lock();
        let now = Instant::now();
        let newly = match marked.get_mut(&host.to_ascii_lowercase()) {
            Some(mark) if mark.probing => {
                // The try failed: twice as long until the next.
                mark.wait = (mark.wait * 2).min(MAX_WAIT);
                mark.retry_at = now + mark.wait;
                mark.probing = false;
                false
            }
            // A connection that pipelined before the mark: nothing new.
            Some(_) => false,
            None => {
                marked.insert(
                    host.to_ascii_lowercase(),
                    Mark {
                        retry_at: now + self.first_wait,
                        wait: self.first_wait,
                        probing: false,
                    },
                );
                true
            }
        };
        self.any.store(true, Ordering::Release);
        newly
    }

    /// The probing connection's pipelined exchange worked: the host gets
    /// pipelined commands again.
    pub fn probe_worked(&self, host: &str) {
        let mut marked = self.lock();
        marked.remove(&host.to_ascii_lowercase());
        if marked.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }

    /// The probing connection ended before any pipelined exchange: another
    /// connection may try.
    pub fn probe_ended(&self, host: &str) {
        if let Some(mark) = self.lock().get_mut(&host.to_ascii_lowercase()) {
            mark.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_failed_host_is_tried_again_by_one_connection_after_a_while() {
        let hosts = PipeliningHosts::new(WAIT);
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Pipeline);
        assert!(hosts.failed("IMAP.example.org"));
        // Another connection that had pipelined meanwhile: no longer wait.
        assert!(!hosts.failed("imap.example.org"));
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::OneAtATime);
        assert_eq!(hosts.verdict("other.example.org"), Verdict::Pipeline);

        tokio::time::advance(WAIT - Duration::from_secs(1)).await;
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::OneAtATime);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Probe);
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::OneAtATime);

        hosts.probe_worked("imap.example.org");
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Pipeline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_try_waits_longer_and_an_abandoned_one_lets_another_try() {
        let hosts = PipeliningHosts::new(WAIT);
        hosts.failed("imap.example.org");
        tokio::time::advance(WAIT).await;
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Probe);
        hosts.probe_ended("imap.example.org");
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Probe);

        hosts.failed("imap.example.org");
        tokio::time::advance(WAIT).await;
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::OneAtATime);
        tokio::time::advance(WAIT).await;
        assert_eq!(hosts.verdict("imap.example.org"), Verdict::Probe);

        // Never longer than a day.
        for _ in 0..20 {
            hosts.failed("imap.example.org");
            tokio::time::advance(MAX_WAIT).await;
            assert_eq!(hosts.verdict("imap.example.org"), Verdict::Probe);
        }
    }
}
