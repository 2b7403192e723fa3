//! Downloading one part of a message: the decoded bytes (BINARY where the
//! server offers it, decoded here otherwise), whole or a byte range, fetched
//! and served in pieces of [`PART_CHUNK`] (`<offset.length>` partial
//! fetches), so a part of any size can be downloaded and none is held whole.

use super::decode::Decoder;
use super::ops::open;
use super::range::{ByteRange, RangeRequest};
use super::structure::{self, Part};
use super::ReadError;
use crate::error_code::ErrorCode;
use crate::imap::budget::{BASE_BUDGET, SMALL_BUDGET, STRUCTURE_BUDGET};
use crate::imap::{ImapClient, ImapError};

/// Bytes fetched per command while a part is served: a command per MiB
/// costs little next to the transfer, and a connection holds one piece at a
/// time however large the part.
pub const PART_CHUNK: u64 = 1024 * 1024;

/// One part being downloaded: what the answer's headers need, and the
/// source of its body, read piece by piece with [`PartDownload::next_chunk`].
#[derive(Debug)]
pub struct PartDownload {
    /// Decoded size of the whole part, when known before sending (always
    /// with a range).
    pub total: Option<u64>,
    /// The range served, when one was asked for.
    pub range: Option<ByteRange>,
    pub mime: String,
    pub filename: String,
    source: Source,
}

/// Where the next piece comes from.
#[derive(Debug)]
struct Source {
    uid: u32,
    /// `BINARY` (the server decodes) or `BODY`.
    item: &'static str,
    part_id: String,
    /// Offset of the next piece in what is fetched.
    next: u64,
    /// End (exclusive) of what is fetched, when known.
    end: Option<u64>,
    /// Decodes here what the server sends encoded.
    decoder: Option<Decoder>,
    /// Decoded bytes still to skip (a range on a part decoded here).
    skip: u64,
    /// Decoded bytes still to serve, when bounded.
    remaining: Option<u64>,
    done: bool,
}

/// A part specifier: numbers joined by dots (`1`, `2.1.3`).
pub fn check_part_id(id: &str) -> Result<(), ReadError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.split('.').all(|s| {
            !s.is_empty()
                && s.len() <= 5
                && s.bytes().all(|b| b.is_ascii_digit())
                && !s.starts_with('0')
        });
    if ok {
        Ok(())
    } else {
        Err(ReadError::Invalid(
            ErrorCode::InvalidPart,
            format!("not a part specifier: {id}"),
        ))
    }
}

/// GET /v1/messages/{mailbox}/{uid}/parts/{part}: finds the part and
/// what to send; its bytes follow from [`PartDownload::next_chunk`].
pub async fn get_part(
    c: &mut ImapClient,
    mailbox: &str,
    uid: u32,
    part_id: &str,
    range: Option<RangeRequest>,
) -> Result<PartDownload, ReadError> {
    check_part_id(part_id)?;
    open(c, mailbox, false).await?;
    let set = uid.to_string();
    let fetched = c
        .uid_fetch(&set, "(UID BODYSTRUCTURE)", None, STRUCTURE_BUDGET)
        .await?;
    let m = fetched
        .messages
        .into_iter()
        .find(|m| m.uid == uid)
        .ok_or(ReadError::MessageNotFound(uid))?;
    let parts = m
        .bodystructure
        .as_ref()
        .map(structure::parts)
        .unwrap_or_default();
    let part: Part = parts
        .into_iter()
        .find(|p| p.id == part_id && !p.is_multipart())
        .ok_or_else(|| ReadError::PartNotFound(part_id.to_string()))?;
    let encoded = Decoder::new(&part.encoding).is_some();
    if c.capabilities().has("BINARY") && encoded && !part.mime.starts_with("message/") {
        match binary_size(c, uid, &part.id).await {
            Ok(total) => return plan(&part, uid, "BINARY", Some(total), None, range),
            // Dovecot refuses BINARY for content it cannot decode
            // ([UNKNOWN-CTE]): serve what can be decoded here instead.
            Err(ReadError::Imap(ImapError::No { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    if !encoded {
        return plan(&part, uid, "BODY", Some(u64::from(part.size)), None, range);
    }
    // Decoded here: the decoded size is known only after a first pass,
    // which only a range needs (for Content-Range).
    let total = match range {
        Some(_) => {
            let mut count = plan(&part, uid, "BODY", None, Decoder::new(&part.encoding), None)?;
            let mut total = 0u64;
            while let Some(piece) = count.next_chunk(c).await? {
                total = total.saturating_add(piece.len() as u64);
            }
            Some(total)
        }
        None => None,
    };
    plan(
        &part,
        uid,
        "BODY",
        total,
        Decoder::new(&part.encoding),
        range,
    )
}

/// The download of `part` from `item`, of `range` when asked.
fn plan(
    part: &Part,
    uid: u32,
    item: &'static str,
    total: Option<u64>,
    decoder: Option<Decoder>,
    range: Option<RangeRequest>,
) -> Result<PartDownload, ReadError> {
    let resolved = match (range, total) {
        (Some(req), Some(total)) => Some(
            req.resolve(total)
                .ok_or(ReadError::RangeNotSatisfiable(total))?,
        ),
        _ => None,
    };
    let mut source = Source {
        uid,
        item,
        part_id: part.id.clone(),
        next: 0,
        end: None,
        decoder,
        skip: 0,
        remaining: None,
        done: false,
    };
    if let Some(r) = resolved {
        if source.decoder.is_some() {
            source.skip = r.start;
            source.end = Some(u64::from(part.size));
        } else {
            source.next = r.start;
            source.end = Some(r.end.saturating_add(1));
        }
        source.remaining = Some(r.len());
    } else {
        // What is fetched: the decoded part for BINARY, else the part as
        // sent, whose size the structure gives. Never more, whatever the
        // server answers.
        source.end = Some(match (item, total) {
            ("BINARY", Some(total)) => total,
            _ => u64::from(part.size),
        });
    }
    Ok(PartDownload {
        total,
        range: resolved,
        mime: part.mime.clone(),
        filename: part.filename.clone(),
        source,
    })
}

impl PartDownload {
    /// The next piece of the part's bytes (at most about [`PART_CHUNK`]);
    /// `None` at the end.
    pub async fn next_chunk(&mut self, c: &mut ImapClient) -> Result<Option<Vec<u8>>, ReadError> {
        let s = &mut self.source;
        while !s.done {
            let len = match s.end {
                Some(end) => end.saturating_sub(s.next).min(PART_CHUNK),
                None => PART_CHUNK,
            };
            let raw = if len == 0 {
                Vec::new()
            } else {
                fetch_section(c, s.uid, s.item, &s.part_id, s.next, len).await?
            };
            s.next = s.next.saturating_add(raw.len() as u64);
            let last = (raw.len() as u64) < len || s.end.is_some_and(|end| s.next >= end);
            let mut out = match &mut s.decoder {
                Some(d) => d.feed(&raw, last),
                None => raw,
            };
            let skip = usize::try_from(s.skip).unwrap_or(usize::MAX).min(out.len());
            out.drain(..skip);
            s.skip = s.skip.saturating_sub(skip as u64);
            if let Some(remaining) = &mut s.remaining {
                out.truncate(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining = remaining.saturating_sub(out.len() as u64);
                s.done |= *remaining == 0;
            }
            s.done |= last;
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }
}

/// `BINARY.SIZE[part]`: the decoded size the server reports.
async fn binary_size(c: &mut ImapClient, uid: u32, part_id: &str) -> Result<u64, ReadError> {
    let r = c
        .uid_fetch(
            &uid.to_string(),
            &format!("(UID BINARY.SIZE[{part_id}])"),
            None,
            SMALL_BUDGET,
        )
        .await?;
    r.messages
        .into_iter()
        .find(|x| x.uid == uid)
        .and_then(|x| x.binary_sizes.first().map(|(_, n)| *n))
        .ok_or(ReadError::MessageNotFound(uid))
}

/// `UID FETCH uid (BODY.PEEK[part]<offset.len>)` (or BINARY.PEEK): up to
/// `len` bytes of the section from `offset` (fewer at its end).
async fn fetch_section(
    c: &mut ImapClient,
    uid: u32,
    item: &str,
    part_id: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, ReadError> {
    let items = format!("(UID {item}.PEEK[{part_id}]<{offset}.{len}>)");
    let budget = BASE_BUDGET.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    let r = c.uid_fetch(&uid.to_string(), &items, None, budget).await?;
    r.messages
        .into_iter()
        .find(|x| x.uid == uid)
        .and_then(|x| x.sections.into_iter().next().map(|(_, b)| b))
        .ok_or(ReadError::MessageNotFound(uid))
}

#[cfg(test)]
mod tests {
    //! A part decoded here (no BINARY), with a range: the size comes from a
    //! counting pass, and both passes fetch the part (in pieces of at most
    //! [`PART_CHUNK`], here one), against a scripted
    //! loopback server.

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::net::{Security, TlsConnector, Upstream};

    #[tokio::test]
    async fn a_range_of_a_part_decoded_here_is_fetched_in_pieces() {
        let data: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
        let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data);
        let wrapped: Vec<u8> = text
            .as_bytes()
            .chunks(76)
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect();
        let size = wrapped.len();
        let mut body = format!("* 1 FETCH (UID 7 BODY[1]<0> {{{size}}}\r\n").into_bytes();
        body.extend_from_slice(&wrapped);
        body.extend_from_slice(b")\r\n");
        let script: Vec<(String, Vec<u8>)> = vec![
            (
                "L1 EXAMINE INBOX".into(),
                b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 8] x\r\nL1 OK\r\n".to_vec(),
            ),
            (
                "L2 UID FETCH 7 (UID BODYSTRUCTURE)".into(),
                format!(
                    "* 1 FETCH (UID 7 BODYSTRUCTURE (\"application\" \"octet-stream\" NIL NIL NIL \"base64\" {size} NIL NIL NIL NIL))\r\nL2 OK\r\n"
                )
                .into_bytes(),
            ),
            (
                format!("L3 UID FETCH 7 (UID BODY.PEEK[1]<0.{size}>)"),
                [body.clone(), b"L3 OK\r\n".to_vec()].concat(),
            ),
            (
                format!("L4 UID FETCH 7 (UID BODY.PEEK[1]<0.{size}>)"),
                [body, b"L4 OK\r\n".to_vec()].concat(),
            ),
        ];
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            write
                .write_all(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
                .await
                .unwrap();
            for (expect, answer) in script {
                let mut line = String::new();
                read.read_line(&mut line).await.unwrap();
                assert_eq!(line.trim_end(), expect);
                write.write_all(&answer).await.unwrap();
            }
            let mut rest = String::new();
            let _ = read.read_line(&mut rest).await;
        });
        let upstream = Upstream {
            host: "127.0.0.1".into(),
            port,
            security: Security::Plain,
        };
        let tls = TlsConnector::new(None).unwrap();
        let mut c = ImapClient::connect(&upstream, &tls, crate::imap::DEFAULT_TIMEOUT)
            .await
            .unwrap();
        let range = RangeRequest::From {
            start: 1000,
            end: Some(1499),
        };
        let mut d = get_part(&mut c, "INBOX", 7, "1", Some(range))
            .await
            .unwrap();
        assert_eq!(d.total, Some(2000));
        assert_eq!(
            d.range,
            Some(ByteRange {
                start: 1000,
                end: 1499
            })
        );
        let mut out = Vec::new();
        while let Some(piece) = d.next_chunk(&mut c).await.unwrap() {
            out.extend(piece);
        }
        assert_eq!(out, &data[1000..1500]);
        drop(c);
        server.await.unwrap();
    }
}
