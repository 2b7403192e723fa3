//! Choosing how a message travels, from what the servers were seen to do.
//!
//! Advertisements are only a first filter: Dovecot advertises `BURL imap`
//! even when URLAUTH is unusable, so the burl path falls back to catenate at
//! run time when GENURLAUTH or BURL fails, and the account is remembered as
//! one where BURL does not work (see [`BurlMemory`]). Pure apart from that
//! small in-memory set.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::store::send::SendPath;

/// What the servers of an account offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probe {
    pub imap_catenate: bool,
    pub imap_urlauth: bool,
    pub imap_uidplus: bool,
    pub smtp_burl_imap: bool,
    /// BURL failed for this account before (not trusted any more).
    pub burl_failed_before: bool,
}

/// The path for a send. `save_sent` false (the provider files its own
/// copy) always assembles: the other paths build the message in Sent.
pub fn choose(probe: Probe, save_sent: bool) -> SendPath {
    if !save_sent || !probe.imap_catenate || !probe.imap_uidplus {
        return SendPath::Assembled;
    }
    if probe.imap_urlauth && probe.smtp_burl_imap && !probe.burl_failed_before {
        SendPath::Burl
    } else {
        SendPath::Catenate
    }
}

/// Whether the provider files Sent copies itself, by IMAP host.
pub fn provider_files_sent(host: &str, hosts: &[String]) -> bool {
    hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// Accounts on which BURL was tried and failed (kept until restart).
#[derive(Debug, Clone, Default)]
pub struct BurlMemory(Arc<Mutex<HashSet<String>>>);

impl BurlMemory {
    pub fn failed(&self, account_id: &str) -> bool {
        self.0
            .lock()
            .map(|s| s.contains(account_id))
            .unwrap_or(false)
    }

    pub fn record_failure(&self, account_id: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(account_id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_capabilities() {
        let all = Probe {
            imap_catenate: true,
            imap_urlauth: true,
            imap_uidplus: true,
            smtp_burl_imap: true,
            burl_failed_before: false,
        };
        assert_eq!(choose(all, true), SendPath::Burl);
        assert_eq!(choose(all, false), SendPath::Assembled);
        let no_urlauth = Probe {
            imap_urlauth: false,
            ..all
        };
        assert_eq!(choose(no_urlauth, true), SendPath::Catenate);
        let no_burl = Probe {
            smtp_burl_imap: false,
            ..all
        };
        assert_eq!(choose(no_burl, true), SendPath::Catenate);
        let failed = Probe {
            burl_failed_before: true,
            ..all
        };
        assert_eq!(choose(failed, true), SendPath::Catenate);
        let nothing = Probe::default();
        assert_eq!(choose(nothing, true), SendPath::Assembled);
        assert!(provider_files_sent(
            "IMAP.gmail.com",
            &["imap.gmail.com".to_string()]
        ));
    }
}
