//! The records the store keeps, shared by the API, the watcher and the notifier.

use serde::{Deserialize, Serialize};

use crate::mail::MessageSummary;
use crate::rules::Rules;

/// How the gateway talks to an upstream IMAP or SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS before login.
    Starttls,
    /// No TLS at all: only allowed with `upstream.allow_plaintext`.
    Plain,
}

impl Security {
    pub const ALL: [Security; 3] = [Security::Tls, Security::Starttls, Security::Plain];

    /// The word the API and the configuration use.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::Plain => "plain",
        }
    }
}

/// Where an upstream server is and how to log in to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    /// The password sealed with the master key (see `store::seal`); never logged.
    #[serde(with = "b64")]
    pub password_sealed: Vec<u8>,
}

/// A registered mail account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    pub email: String,
    pub imap: ServerRecord,
    pub smtp: Option<ServerRecord>,
    /// Unix seconds.
    pub created_at: i64,
    /// Signed in through an OAuth2 provider: the servers take access
    /// tokens made from this grant instead of the (then empty) passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthRecord>,
}

/// An account's standing grant from its OAuth2 provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthRecord {
    /// The configured provider's name (`oauth.providers.NAME`).
    pub provider: String,
    /// The refresh token sealed with the master key; never logged.
    #[serde(with = "b64")]
    pub refresh_sealed: Vec<u8>,
    /// Set when the provider refused the refresh token for good
    /// (`invalid_grant`): nothing is tried until the account signs in again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// How much a device wants to be told in each push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadTier {
    /// Sender, subject and a preview of the text.
    #[default]
    Preview,
    /// Sender and subject.
    Headers,
    /// Mailbox and count only.
    Count,
    /// Only "something happened to this account".
    Wake,
}

impl PayloadTier {
    pub const ALL: [PayloadTier; 4] = [
        PayloadTier::Preview,
        PayloadTier::Headers,
        PayloadTier::Count,
        PayloadTier::Wake,
    ];

    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadTier::Preview => "preview",
            PayloadTier::Headers => "headers",
            PayloadTier::Count => "count",
            PayloadTier::Wake => "wake",
        }
    }
}

/// A browser's `PushSubscription`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub endpoint: String,
    /// The device's P-256 public key, 65 bytes uncompressed.
    #[serde(with = "b64")]
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    #[serde(with = "b64")]
    pub auth: Vec<u8>,
}

/// A phone (or browser) registered to receive pushes for one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub account_id: String,
    pub subscription: PushSubscription,
    pub mailboxes: Vec<String>,
    pub payload: PayloadTier,
    /// Unix seconds.
    pub created_at: i64,
    /// Which messages it is told about, and when.
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub rules: Rules,
    /// Whether it is told when pushed mail is read elsewhere, as the
    /// client set it; [`DeviceRecord::clears`] gives the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<bool>,
}

impl DeviceRecord {
    /// Whether the device gets `read` pushes: as the client said, else
    /// for the tiers whose notifications show a message (headers and
    /// preview), whose notifications there are to remove.
    pub fn clears(&self) -> bool {
        self.clear.unwrap_or(matches!(
            self.payload,
            PayloadTier::Headers | PayloadTier::Preview
        ))
    }
}

/// Whether a device's list of `mailboxes` asks for `mailbox` (INBOX in
/// any case, other names exactly).
pub fn lists_mailbox(mailboxes: &[String], mailbox: &str) -> bool {
    mailboxes.iter().any(|m| {
        m == mailbox || (m.eq_ignore_ascii_case("INBOX") && mailbox.eq_ignore_ascii_case("INBOX"))
    })
}

/// Where the watcher has got to in one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub uidvalidity: u32,
    /// Every UID below this has been seen (pushed or recorded as old).
    pub uidnext: u32,
    pub highestmodseq: Option<u64>,
    /// UID 4294967295, the largest, has been seen too (which `uidnext`
    /// cannot say): no newer message can exist in this UIDVALIDITY.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub max_uid_seen: bool,
}

/// The messages recently pushed from a mailbox and not yet read: when
/// another client reads, moves or deletes one, the devices are told.
/// Newest last, at most [`MAX_PUSHED_WINDOW`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedWindow {
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
}

/// Most messages a mailbox's [`PushedWindow`] keeps; older ones are let go.
pub const MAX_PUSHED_WINDOW: usize = 200;

impl PushedWindow {
    /// Adds newly pushed `uids` (of `uidvalidity`; a new one starts afresh),
    /// keeping the newest [`MAX_PUSHED_WINDOW`].
    pub fn add(&mut self, uidvalidity: u32, uids: impl IntoIterator<Item = u32>) {
        if self.uidvalidity != uidvalidity {
            *self = PushedWindow {
                uidvalidity,
                uids: Vec::new(),
            };
        }
        self.uids.extend(uids);
        self.uids.sort_unstable();
        self.uids.dedup();
        let excess = self.uids.len().saturating_sub(MAX_PUSHED_WINDOW);
        self.uids.drain(..excess);
    }

    /// Lets go of `uids` (read, moved or deleted); true if any was here.
    pub fn remove(&mut self, uids: &[u32]) -> bool {
        let before = self.uids.len();
        self.uids.retain(|uid| !uids.contains(uid));
        self.uids.len() != before
    }
}

/// Which queued push this is: one per device and mailbox, so bursts coalesce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PushKey {
    pub device_id: String,
    pub mailbox: String,
}

/// A push waiting to be delivered (or retried). Survives restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPush {
    pub key: PushKey,
    pub account_id: String,
    /// New messages not yet delivered, oldest first; bounded by `MAX_QUEUED_MESSAGES`.
    pub messages: Vec<MessageSummary>,
    /// How many new messages this push stands for (may exceed `messages.len()`).
    pub count: u32,
    /// Bumped on every merge, so a delivery only removes what it actually sent.
    pub version: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix milliseconds before which no attempt is made: Retry-After or
    /// backoff after an attempt; before any, the end of the device's quiet
    /// hours, or [`super::DORMANT`] while it only counts muted mail.
    pub not_before_ms: i64,
    /// Unix milliseconds after which the push is dropped (its TTL ran out).
    pub expires_at_ms: i64,
    /// When set, the push service answered 413: send a smaller payload.
    #[serde(default)]
    pub shrink: bool,
    /// Messages without `\\Seen` in the mailbox when the newest mail of
    /// this push arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<u32>,
    /// The mailbox's UIDVALIDITY, with which the UIDs name messages.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub uidvalidity: u32,
    /// The deliverer's claim on it, when the backend hands out claims (see
    /// `Store::claim_push`); 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub claim: i64,
    /// The latest merges' versions and the times their mail could go out
    /// (`DeviceMail::not_before_ms`), newest last, at most
    /// [`MAX_MERGE_TIMES`]: what a delivery leaves waits as its own mail
    /// would have (quiet hours, muted) rather than going out at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_times: Vec<(u64, i64)>,
}

/// Merges whose times a queued push remembers.
pub const MAX_MERGE_TIMES: usize = 8;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// At most this many message summaries are kept per queued push; older ones
/// are dropped (the count still covers them).
pub const MAX_QUEUED_MESSAGES: usize = 20;

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
