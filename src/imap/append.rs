//! APPEND with streamed literals, plain or with CATENATE (RFC 4469), and the
//! APPENDUID (RFC 4315) it answers with.
//!
//! Literal bodies are read from an `AsyncRead` while being written, so a
//! large message or attachment is never held in memory. With `LITERAL+` the
//! literals are sent without waiting; otherwise each waits for `+`.

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client::ImapClient;
use super::command::Command;
use super::error::ImapError;
use super::parser::{Code, Status};
use super::url::quotable;

/// Bytes copied at a time from a literal's reader.
const COPY_CHUNK: usize = 64 * 1024;

/// One piece of an APPEND.
pub enum AppendPart {
    /// Bytes the client sends: exactly `len` bytes read from `reader`.
    Text {
        len: u64,
        reader: Pin<Box<dyn AsyncRead + Send>>,
    },
    /// A CATENATE `URL` part: the server copies the bytes itself.
    Url(String),
}

impl std::fmt::Debug for AppendPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendPart::Text { len, .. } => write!(f, "Text({len} bytes)"),
            AppendPart::Url(u) => write!(f, "Url({u})"),
        }
    }
}

impl AppendPart {
    /// A text part from bytes in memory (headers, boundaries, short text).
    pub fn bytes(bytes: Vec<u8>) -> Self {
        AppendPart::Text {
            len: bytes.len() as u64,
            reader: Box::pin(std::io::Cursor::new(bytes)),
        }
    }
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendUid {
    pub uidvalidity: u32,
    pub uid: u32,
}

impl ImapClient {
    /// Appends a message built from `parts` to `mailbox` with `flags` (e.g.
    /// `\Seen`). More than one part, or any URL part, needs CATENATE; a
    /// single text part is a plain APPEND. Returns the APPENDUID (`None`
    /// when the server lacks UIDPLUS) and the bytes written to the server.
    pub async fn append_parts(
        &mut self,
        mailbox: &str,
        flags: &str,
        parts: Vec<AppendPart>,
    ) -> Result<(Option<AppendUid>, u64), ImapError> {
        let catenate = parts.len() != 1 || matches!(parts.first(), Some(AppendPart::Url(_)));
        if catenate && !self.capabilities().has("CATENATE") {
            return Err(ImapError::Unsupported("CATENATE"));
        }
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        let timeout = self.timeout;
        // Large literals take longer than one command's timeout: bound each
        // step instead (see `write_timed`), and the whole by a generous limit.
        let overall = timeout.saturating_mul(60);
        let result =
            tokio::time::timeout(overall, self.append_inner(mailbox, flags, parts, catenate))
                .await
                .unwrap_or(Err(ImapError::Timeout));
        match result {
            Err(e) => Err(self.fail(e)),
            ok => ok,
        }
    }

    async fn append_inner(
        &mut self,
        mailbox: &str,
        flags: &str,
        parts: Vec<AppendPart>,
        catenate: bool,
    ) -> Result<(Option<AppendUid>, u64), ImapError> {
        let tag = self.next_tag();
        let literal_plus = self.capabilities().has("LITERAL+");
        let head = Command::new("APPEND")
            .mailbox(mailbox, self.utf8_enabled())?
            .raw(&format!("({flags})"));
        let mut line = tag.as_bytes().to_vec();
        line.push(b' ');
        for part in head.parts {
            match part {
                super::command::Part::Text(t) => line.extend_from_slice(&t),
                // A mailbox name that needs a literal: send it synchronizing.
                super::command::Part::Literal(l) => {
                    line.extend_from_slice(format!("{{{}}}\r\n", l.len()).as_bytes());
                    self.send_line(&tag, &line).await?;
                    line = l;
                }
                super::command::Part::Continuation(_) => {
                    return Err(ImapError::protocol("continuation in APPEND"))
                }
            }
        }
        if catenate {
            line.extend_from_slice(b" CATENATE (");
        }
        let mut written = 0u64;
        let mut first = true;
        for part in parts {
            match part {
                AppendPart::Url(url) => {
                    if !quotable(&url) {
                        return Err(ImapError::InvalidArgument(super::command::InvalidArgument(
                            "URL",
                        )));
                    }
                    if !first {
                        line.push(b' ');
                    }
                    line.extend_from_slice(format!("URL \"{url}\"").as_bytes());
                }
                AppendPart::Text { len, mut reader } => {
                    if !first || !catenate {
                        line.push(b' ');
                    }
                    if catenate {
                        line.extend_from_slice(b"TEXT ");
                    }
                    let plus = if literal_plus { "+" } else { "" };
                    line.extend_from_slice(format!("{{{len}{plus}}}\r\n").as_bytes());
                    if literal_plus {
                        written += self.write_counted(&line).await?;
                    } else {
                        written += self.send_line(&tag, &line).await?;
                    }
                    line.clear();
                    written += self.copy_literal(&mut reader, len).await?;
                }
            }
            first = false;
        }
        if catenate {
            line.push(b')');
        }
        line.extend_from_slice(b"\r\n");
        written += self.write_counted(&line).await?;
        let done = self.read_until_tagged(&tag, &mut Some).await?;
        match done.status {
            Status::Ok => {}
            Status::No => {
                return Err(ImapError::No {
                    command: "APPEND",
                    text: done.text,
                })
            }
            _ => {
                return Err(ImapError::Bad {
                    command: "APPEND",
                    text: done.text,
                })
            }
        }
        let uid = match done.code {
            Some(Code::AppendUid { uidvalidity, uid }) => Some(AppendUid { uidvalidity, uid }),
            _ => None,
        };
        Ok((uid, written))
    }

    /// Writes `line` (ending in a synchronizing literal announcement) and
    /// waits for `+`; a tagged answer instead is the server refusing.
    async fn send_line(&mut self, tag: &str, line: &[u8]) -> Result<u64, ImapError> {
        let n = self.write_counted(line).await?;
        if let Some(done) = self.wait_continuation(tag, &mut Some).await? {
            return Err(ImapError::No {
                command: "APPEND",
                text: done.text,
            });
        }
        Ok(n)
    }

    async fn write_counted(&mut self, bytes: &[u8]) -> Result<u64, ImapError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.write(bytes))
            .await
            .map_err(|_| ImapError::Timeout)??;
        Ok(bytes.len() as u64)
    }

    /// Copies exactly `len` bytes from `reader` to the server.
    async fn copy_literal(
        &mut self,
        reader: &mut Pin<Box<dyn AsyncRead + Send>>,
        len: u64,
    ) -> Result<u64, ImapError> {
        let mut left = len;
        let mut chunk = vec![
            0u8;
            COPY_CHUNK
                .min(usize::try_from(len).unwrap_or(COPY_CHUNK))
                .max(1)
        ];
        while left > 0 {
            let want = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            let n = tokio::time::timeout(self.timeout, reader.read(&mut chunk[..want]))
                .await
                .map_err(|_| ImapError::Timeout)??;
            if n == 0 {
                // The literal is announced: the connection cannot recover.
                return Err(ImapError::protocol("literal source ended early"));
            }
            self.write_counted(&chunk[..n]).await?;
            left -= n as u64;
        }
        Ok(len)
    }
}
