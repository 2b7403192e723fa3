//! Moving message bytes without holding them: uploads streamed as base64,
//! referenced parts fetched from IMAP piecewise, and the spool file of an
//! assembled message (one per job, in its spool directory).

use std::path::Path;
use std::pin::Pin;

use futures_util::stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::compose::{base64_lines, base64_lines_size};
use crate::imap::{AppendPart, ImapClient, ImapError, MessageUrl};
use crate::store::send::Segment;

/// Raw bytes read per base64 step (a whole number of 57-byte lines).
const B64_READ: usize = 57 * 1024;
/// Bytes asked for per FETCH of a referenced section.
pub const FETCH_CHUNK: u64 = 256 * 1024;

/// Why spooling failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("spool file: {0}")]
    Io(#[from] std::io::Error),
    /// A referenced message changed (UIDVALIDITY) or vanished.
    #[error("referenced message {0} is gone")]
    Gone(String),
}

impl SpoolError {
    pub fn class(&self) -> crate::error::ErrorClass {
        match self {
            SpoolError::Imap(e) => e.class(),
            SpoolError::Io(_) => crate::error::ErrorClass::Transient,
            SpoolError::Gone(_) => crate::error::ErrorClass::Permanent,
        }
    }
}

/// A reader giving the base64 lines of the file at `path`.
pub fn upload_reader(path: &str) -> Pin<Box<dyn AsyncRead + Send>> {
    let path = path.to_owned();
    let chunks = stream::unfold(None::<tokio::fs::File>, move |file| {
        let path = path.clone();
        async move {
            let mut file = match file {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut raw = vec![0u8; B64_READ];
            let mut filled = 0;
            while filled < raw.len() {
                match file.read(&mut raw[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            if filled == 0 {
                return None;
            }
            Some((
                Ok(bytes::Bytes::from(base64_lines(&raw[..filled]))),
                Some(file),
            ))
        }
    });
    Box::pin(tokio_util::io::StreamReader::new(chunks))
}

/// The APPEND parts of `segments` for CATENATE: text and uploads as TEXT,
/// references as URLs.
pub fn catenate_parts(segments: &[Segment]) -> Vec<AppendPart> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text { text } => AppendPart::bytes(text.as_bytes().to_vec()),
            Segment::Upload { file, raw_size } => AppendPart::Text {
                len: base64_lines_size(*raw_size),
                reader: upload_reader(file),
            },
            Segment::Ref {
                mailbox,
                uidvalidity,
                uid,
                section,
                ..
            } => AppendPart::Url(
                MessageUrl {
                    mailbox: mailbox.clone(),
                    uidvalidity: Some(*uidvalidity),
                    uid: *uid,
                    section: section.clone(),
                }
                .path(),
            ),
        })
        .collect()
}

/// Copies `section` (`""` whole) of `uid` in the selected mailbox into
/// `out`, piecewise. Returns the bytes fetched.
pub async fn copy_section<W: tokio::io::AsyncWrite + Unpin>(
    imap: &mut ImapClient,
    uid: u32,
    section: &str,
    out: &mut W,
) -> Result<u64, SpoolError> {
    let mut offset = 0u64;
    loop {
        let chunk = imap
            .fetch_section_chunk(uid, section, offset, FETCH_CHUNK)
            .await?;
        out.write_all(&chunk).await?;
        offset += chunk.len() as u64;
        if (chunk.len() as u64) < FETCH_CHUNK {
            return Ok(offset);
        }
    }
}

/// Writes the whole message of `segments` to `path`, fetching references
/// from IMAP. Returns (size, bytes fetched from IMAP).
pub async fn write_spool(
    imap: &mut ImapClient,
    segments: &[Segment],
    path: &Path,
) -> Result<(u64, u64), SpoolError> {
    let file = tokio::fs::File::create(path).await?;
    let mut out = tokio::io::BufWriter::new(file);
    let mut size = 0u64;
    let mut fetched = 0u64;
    let mut selected: Option<(String, u32)> = None;
    for segment in segments {
        match segment {
            Segment::Text { text } => {
                out.write_all(text.as_bytes()).await?;
                size += text.len() as u64;
            }
            Segment::Upload { file, .. } => {
                let mut reader = upload_reader(file);
                size += tokio::io::copy(&mut reader, &mut out).await?;
            }
            Segment::Ref {
                mailbox,
                uidvalidity,
                uid,
                section,
                ..
            } => {
                if selected.as_ref().map(|(m, _)| m) != Some(mailbox) {
                    let status = imap.examine(mailbox).await?;
                    selected = Some((mailbox.clone(), status.uidvalidity));
                }
                if selected.as_ref().map(|(_, v)| *v) != Some(*uidvalidity) {
                    return Err(SpoolError::Gone(format!("{mailbox}/{uid}")));
                }
                let n =
                    copy_section(imap, *uid, section.as_deref().unwrap_or(""), &mut out).await?;
                size += n;
                fetched += n;
            }
        }
    }
    out.flush().await?;
    out.into_inner().sync_all().await?;
    Ok((size, fetched))
}

/// Writes message `uid` of the selected mailbox to `path`; returns its size.
pub async fn spool_message(
    imap: &mut ImapClient,
    uid: u32,
    path: &Path,
) -> Result<u64, SpoolError> {
    let file = tokio::fs::File::create(path).await?;
    let mut out = tokio::io::BufWriter::new(file);
    let n = copy_section(imap, uid, "", &mut out).await?;
    out.flush().await?;
    out.into_inner().sync_all().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_reader_gives_mime_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let raw: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&path, &raw).unwrap();
        let mut out = Vec::new();
        upload_reader(path.to_str().unwrap())
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, base64_lines(&raw));
        assert_eq!(out.len() as u64, base64_lines_size(raw.len() as u64));
    }
}
