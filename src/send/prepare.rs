//! Turning a `POST /v1/send` request into a [`SendJob`]: validating it,
//! resolving uploads and references against the IMAP server, probing the
//! servers and choosing the path. Nothing is stored here: a request that
//! fails changes nothing (the job directory made for it is removed).

use std::path::{Path, PathBuf};

use rand::RngCore;

use super::compose::{self, Attachment, Draft};
use super::outbox::{Connections, SendContext};
use super::plan::{self, Probe};
use super::request::upstream_error;
pub use super::request::{
    validate, AttachmentRequest, MessageRef, PartRef, PrepareError, SendRequest,
};
use crate::error_code::ErrorCode;
use crate::imap::{ImapClient, ImapError};
use crate::read::structure::BodyStructure;
use crate::store::send::{ByteCounts, SendJob, SendStatus, UploadRecord};
use crate::store::AccountRecord;

/// The file of an upload.
pub fn upload_file(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("uploads").join(id)
}

/// Whether `id` looks like one of ours (hex), so it can name a file.
pub fn valid_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn new_id() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves `req` for `account` into a job ready to be stored, with the
/// IMAP and SMTP sessions that looked at it, still logged in, for the
/// outbox to start on.
pub async fn prepare(
    ctx: &SendContext,
    account: &AccountRecord,
    req: &SendRequest,
    idempotency_key: Option<String>,
    body_len: u64,
) -> Result<(SendJob, Connections), PrepareError> {
    validate(req)?;
    if account.smtp.is_none() {
        return Err(PrepareError::new(
            ErrorCode::NoSmtpServer,
            "the account was registered without an SMTP server",
        ));
    }
    let now_ms = crate::unix_millis();
    let mut uploads: Vec<(UploadRecord, Option<String>)> = Vec::new();
    for a in &req.attachments {
        if let AttachmentRequest::Upload {
            upload_id,
            filename,
        } = a
        {
            let record = ctx
                .store
                .upload(upload_id)
                .await
                .map_err(|_| PrepareError::new(ErrorCode::StorageError, "cannot read uploads"))?
                .filter(|u| u.account_id == account.id && u.expires_ms > now_ms)
                .ok_or_else(|| {
                    PrepareError::new(
                        ErrorCode::UnknownUpload,
                        format!("no such upload: {upload_id}"),
                    )
                })?;
            if !record.complete() {
                return Err(PrepareError::new(
                    ErrorCode::UploadIncomplete,
                    format!("upload {upload_id} is not complete"),
                ));
            }
            uploads.push((record, filename.clone()));
        }
    }

    let mut imap = ctx.imap(account).await?;
    let (attachments_resolved, reply_ids, imap_probe) = match resolve(req, &mut imap).await {
        Ok(resolved) => resolved,
        Err(e) => {
            imap.logout().await;
            return Err(e);
        }
    };
    let smtp = match ctx.smtp(account).await {
        Ok(smtp) => smtp,
        Err(e) => {
            imap.logout().await;
            return Err(upstream_error("smtp", e.class(), e));
        }
    };
    let burl_imap = smtp.ehlo().burl_imap();
    let max_size = smtp.ehlo().max_size();
    let connections = Connections {
        imap: Some(imap),
        smtp: Some(smtp),
    };

    // Anything refused from here on closes the sessions politely.
    let job = async {
        let settings =
            ctx.store.send_settings(&account.id).await.map_err(|_| {
                PrepareError::new(ErrorCode::StorageError, "cannot read send settings")
            })?;
        let save_sent = settings.save_sent.unwrap_or_else(|| {
            !plan::provider_files_sent(
                &account.imap.host,
                &ctx.config.send.provider_files_sent_hosts,
            )
        });
        let probe = Probe {
            smtp_burl_imap: burl_imap,
            burl_failed_before: ctx.burl.failed(&account.id),
            ..imap_probe
        };
        let path = plan::choose(probe, save_sent);

        let id = new_id();
        let dir = ctx.job_dir(&id);
        let built = build_job(
            &dir,
            &id,
            account,
            req,
            attachments_resolved,
            reply_ids,
            &uploads,
        );
        let mut job = match built {
            Ok(job) => job,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if let Some(max) = max_size {
            if job.size > max {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(PrepareError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "the message is {} bytes; the submission server accepts at most {max}",
                        job.size
                    ),
                ));
            }
        }
        job.path = path;
        job.sent_mailbox = save_sent.then(|| {
            settings
                .sent_mailbox
                .clone()
                .unwrap_or_else(|| "Sent".into())
        });
        job.idempotency_key = idempotency_key;
        job.bytes.from_client = body_len + uploads.iter().map(|(u, _)| u.offset).sum::<u64>();
        job.created_ms = now_ms;
        Ok(job)
    }
    .await;
    match job {
        Ok(job) => Ok((job, connections)),
        Err(e) => {
            connections.close().await;
            Err(e)
        }
    }
}

/// A resolved attachment before the job owns its files.
enum Resolved {
    Upload(usize),
    Other(Attachment),
}

type ReplyIds = Option<(String, Vec<String>)>;

async fn resolve(
    req: &SendRequest,
    imap: &mut ImapClient,
) -> Result<(Vec<Resolved>, ReplyIds, Probe), PrepareError> {
    let caps = imap.capabilities();
    let probe = Probe {
        imap_catenate: caps.has("CATENATE"),
        imap_urlauth: caps.has("URLAUTH"),
        imap_uidplus: caps.has("UIDPLUS"),
        ..Probe::default()
    };
    let mut out = Vec::new();
    let mut upload_index = 0;
    for a in &req.attachments {
        match a {
            AttachmentRequest::Upload { .. } => {
                out.push(Resolved::Upload(upload_index));
                upload_index += 1;
            }
            AttachmentRequest::Ref { part } => {
                let uidvalidity = examine(imap, &part.mailbox).await?;
                let (_, structure) = imap.fetch_structure(part.uid).await?.ok_or_else(|| {
                    PrepareError::new(
                        ErrorCode::UnknownMessage,
                        format!("no message {} in {}", part.uid, part.mailbox),
                    )
                })?;
                let (size, multipart) = part_size(&structure, &part.part).ok_or_else(|| {
                    PrepareError::new(
                        ErrorCode::UnknownPart,
                        format!("message {} has no part {}", part.uid, part.part),
                    )
                })?;
                if multipart {
                    return Err(PrepareError::new(
                        ErrorCode::UnsupportedPart,
                        "multipart sections cannot be attached; name their parts",
                    ));
                }
                let mime = imap
                    .fetch_section_chunk(part.uid, &format!("{}.MIME", part.part), 0, 64 * 1024)
                    .await?;
                out.push(Resolved::Other(Attachment::Part {
                    mailbox: part.mailbox.clone(),
                    uidvalidity,
                    uid: part.uid,
                    section: part.part.clone(),
                    mime_size: mime.len() as u64,
                    size,
                }));
            }
        }
    }
    if let Some(fwd) = &req.forward {
        let uidvalidity = examine(imap, &fwd.mailbox).await?;
        let (size, _) = imap.fetch_structure(fwd.uid).await?.ok_or_else(|| {
            PrepareError::new(
                ErrorCode::UnknownMessage,
                format!("no message {} in {}", fwd.uid, fwd.mailbox),
            )
        })?;
        out.push(Resolved::Other(Attachment::Message {
            mailbox: fwd.mailbox.clone(),
            uidvalidity,
            uid: fwd.uid,
            size,
        }));
    }
    let mut reply = None;
    if let Some(parent) = &req.in_reply_to {
        examine(imap, &parent.mailbox).await?;
        imap.fetch_structure(parent.uid).await?.ok_or_else(|| {
            PrepareError::new(
                ErrorCode::UnknownMessage,
                format!("no message {} in {}", parent.uid, parent.mailbox),
            )
        })?;
        let header = imap
            .fetch_section_chunk(parent.uid, "HEADER", 0, 256 * 1024)
            .await?;
        let parsed = mail_parser::MessageParser::default().parse_headers(&header);
        let message_id = parsed
            .as_ref()
            .and_then(|m| m.message_id())
            .map(|id| format!("<{id}>"));
        if let Some(id) = message_id {
            let refs = parsed
                .as_ref()
                .map(|m| match m.references() {
                    mail_parser::HeaderValue::Text(t) => vec![format!("<{t}>")],
                    mail_parser::HeaderValue::TextList(l) => {
                        l.iter().map(|t| format!("<{t}>")).collect()
                    }
                    _ => Vec::new(),
                })
                .unwrap_or_default();
            reply = Some((id, refs));
        }
    }
    Ok((out, reply, probe))
}

/// The declared size of `section` in a BODYSTRUCTURE and whether it is a
/// multipart, as the read path sees the same structure; `None` when there is
/// no such part or a single part without a size.
pub(crate) fn part_size(structure: &crate::imap::Value, section: &str) -> Option<(u64, bool)> {
    let structure = BodyStructure::from_value(structure);
    let part = structure.part(section)?;
    if part.is_multipart() {
        return Some((0, true));
    }
    Some((part.octets?, false))
}

async fn examine(imap: &mut ImapClient, mailbox: &str) -> Result<u32, PrepareError> {
    match imap.examine(mailbox).await {
        Ok(status) => Ok(status.uidvalidity),
        Err(ImapError::No { .. }) => Err(PrepareError::new(
            ErrorCode::UnknownMailbox,
            format!("no mailbox {mailbox:?}"),
        )),
        Err(e) => Err(e.into()),
    }
}

fn build_job(
    dir: &Path,
    id: &str,
    account: &AccountRecord,
    req: &SendRequest,
    resolved: Vec<Resolved>,
    reply: ReplyIds,
    uploads: &[(UploadRecord, Option<String>)],
) -> Result<SendJob, PrepareError> {
    let io_error = |e: std::io::Error| {
        PrepareError::new(
            ErrorCode::StorageError,
            format!("cannot prepare the send: {e}"),
        )
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let data_dir = dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| io_error(std::io::Error::other("spool directory has no parent")))?;
    let mut attachments = Vec::new();
    for r in resolved {
        match r {
            Resolved::Other(a) => attachments.push(a),
            Resolved::Upload(i) => {
                let Some((upload, filename)) = uploads.get(i) else {
                    continue;
                };
                let source = upload_file(data_dir, &upload.id);
                let owned = dir.join(format!("upload-{i}"));
                // A hard link keeps the bytes for the job even when the
                // upload expires; copying is the fallback across devices.
                if std::fs::hard_link(&source, &owned).is_err() {
                    std::fs::copy(&source, &owned).map_err(io_error)?;
                }
                attachments.push(Attachment::Upload {
                    file: owned.to_string_lossy().into_owned(),
                    raw_size: upload.offset,
                    content_type: upload.content_type.clone(),
                    filename: filename
                        .clone()
                        .or_else(|| upload.filename.clone())
                        .unwrap_or_else(|| format!("attachment-{}", i + 1)),
                });
            }
        }
    }
    let domain = account
        .email
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "lemonade.invalid".into());
    let (in_reply_to, references) = match reply {
        Some((id, refs)) => (Some(id), refs),
        None => (None, Vec::new()),
    };
    let draft = Draft {
        from: account.email.clone(),
        to: req.to.clone(),
        cc: req.cc.clone(),
        subject: req.subject.clone(),
        text: req.text.clone(),
        html: req.html.clone(),
        attachments,
        in_reply_to,
        references,
        message_id: format!("<{id}@{domain}>"),
        date: compose::rfc5322_date(crate::unix_millis() / 1000),
        boundary: format!("lmn-{id}"),
    };
    let segments = compose::compose(&draft);
    let size = compose::total_size(&segments);
    let recipients = req
        .to
        .iter()
        .chain(&req.cc)
        .chain(&req.bcc)
        .cloned()
        .collect();
    Ok(SendJob {
        id: id.to_owned(),
        account_id: account.id.clone(),
        idempotency_key: None,
        created_ms: 0,
        status: SendStatus::Queued,
        path: crate::store::send::SendPath::Assembled,
        from: account.email.clone(),
        recipients,
        message_id: draft.message_id,
        segments,
        size,
        sent_mailbox: None,
        sent: None,
        spooled: false,
        url: None,
        submit_started: false,
        smtp_reply: None,
        error: None,
        bytes: ByteCounts::default(),
        attempts: 0,
    })
}
