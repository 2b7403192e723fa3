//! Durable state of the send path: uploads, send jobs (the outbox) with
//! their idempotency keys, and per-account send settings.

use serde::{Deserialize, Serialize};

use super::StoreResult;

/// A file a phone uploaded for a later send (complete or still resumable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub account_id: String,
    pub content_type: String,
    /// The file's name, from tus `Upload-Metadata` (`filename`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// `Upload-Length`, when the client announced one (resumable upload).
    pub length: Option<u64>,
    /// Bytes received so far.
    pub offset: u64,
    /// Hex SHA-256 once complete.
    pub sha256: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

impl UploadRecord {
    pub fn complete(&self) -> bool {
        self.sha256.is_some()
    }
}

/// Where a send job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendStatus {
    Queued,
    /// The Sent copy is stored (burl, catenate), not yet submitted.
    Stored,
    /// The submission server accepted the message.
    Submitted,
    Done,
    Failed,
}

impl SendStatus {
    pub fn is_final(self) -> bool {
        matches!(self, SendStatus::Done | SendStatus::Failed)
    }
}

/// How the message travels (see `crate::send::plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    Burl,
    Catenate,
    Assembled,
}

/// One piece of the composed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Segment {
    /// Headers, boundaries, encoded text (ASCII).
    Text { text: String },
    /// An uploaded file, base64-encoded in 76-column lines when written.
    Upload {
        /// The file, owned by the job (hard link into its spool directory).
        file: String,
        raw_size: u64,
    },
    /// Bytes of a message on the IMAP server (a section, or the whole message).
    Ref {
        mailbox: String,
        uidvalidity: u32,
        uid: u32,
        section: Option<String>,
        size: u64,
    },
}

/// Where the Sent copy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Bytes moved for one send, for the client and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    pub from_client: u64,
    pub to_imap: u64,
    pub from_imap: u64,
    pub to_smtp: u64,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailure {
    pub code: String,
    pub message: String,
    pub smtp_reply: Option<String>,
}

/// A message in the outbox, with each step's result as it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub id: String,
    pub account_id: String,
    pub idempotency_key: Option<String>,
    pub created_ms: i64,
    pub status: SendStatus,
    pub path: SendPath,
    pub from: String,
    /// Every envelope recipient (to, cc, bcc).
    pub recipients: Vec<String>,
    pub message_id: String,
    pub segments: Vec<Segment>,
    /// Size of the composed message in bytes.
    pub size: u64,
    /// Mailbox of the Sent copy; `None`: no copy (the provider files one).
    pub sent_mailbox: Option<String>,
    pub sent: Option<SentRef>,
    /// The spool file holds the complete message (assembled, catenate).
    #[serde(default)]
    pub spooled: bool,
    /// The authorized URL for BURL, once generated.
    pub url: Option<String>,
    /// The final SMTP command was sent; its answer may not be recorded yet.
    #[serde(default)]
    pub submit_started: bool,
    pub smtp_reply: Option<String>,
    pub error: Option<SendFailure>,
    pub bytes: ByteCounts,
    pub attempts: u32,
}

/// Per-account choices of the send path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SendSettings {
    /// Store a copy in Sent; `None`: decided by the host (Gmail and
    /// Microsoft 365 file their own copies).
    pub save_sent: Option<bool>,
    /// The Sent mailbox; default `Sent`.
    pub sent_mailbox: Option<String>,
}

/// What creating a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New,
    /// A job with the same idempotency key exists: its id.
    Existing(String),
}

/// What [`SendStore::remove_send_data`] removed, for deleting the files
/// that go with the records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RemovedSendData {
    pub uploads: Vec<String>,
    pub jobs: Vec<String>,
}

/// The send path's durable state.
#[async_trait::async_trait]
pub trait SendStore {
    async fn put_upload(&self, upload: &UploadRecord) -> StoreResult<()>;
    async fn upload(&self, id: &str) -> StoreResult<Option<UploadRecord>>;
    async fn uploads(&self) -> StoreResult<Vec<UploadRecord>>;
    async fn delete_upload(&self, id: &str) -> StoreResult<()>;

    /// Stores a new job unless its account already has one with the same
    /// idempotency key (atomically).
    async fn create_send_job(&self, job: &SendJob) -> StoreResult<Created>;
    /// The job an account created with this idempotency key, if any.
    async fn send_id_for_key(&self, account_id: &str, key: &str) -> StoreResult<Option<String>>;
    /// Updates a job; one that is gone (its account was deleted) stays gone.
    /// Refused with `StoreError::Fenced` when another process holds it.
    async fn put_send_job(&self, job: &SendJob) -> StoreResult<()>;
    async fn send_job(&self, id: &str) -> StoreResult<Option<SendJob>>;
    async fn unfinished_send_jobs(&self) -> StoreResult<Vec<SendJob>>;
    /// Takes an unfinished job for this process to run; false when another
    /// live process holds it. A backend shared by several nodes lets a
    /// node hold its jobs while its lease lives (and a while after, longer
    /// than any SMTP step), so that one submission never runs twice at once;
    /// a single-process store always grants it.
    async fn claim_send_job(&self, id: &str) -> StoreResult<bool>;

    async fn send_settings(&self, account_id: &str) -> StoreResult<SendSettings>;
    async fn put_send_settings(&self, account_id: &str, settings: &SendSettings)
        -> StoreResult<()>;

    /// Removes everything the send path keeps for an account: uploads, send
    /// jobs (finished or not), idempotency keys and settings.
    async fn remove_send_data(&self, account_id: &str) -> StoreResult<RemovedSendData>;
}
