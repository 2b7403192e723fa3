//! Downloading one part of a message: the decoded bytes (BINARY where the
//! server offers it, decoded here otherwise), whole or a byte range.

use super::ops::open;
use super::range::{ByteRange, RangeRequest};
use super::structure::{self, Part};
use super::ReadError;
use crate::imap::budget::{MAX_RESPONSE, SMALL_BUDGET, STRUCTURE_BUDGET};
use crate::imap::{ImapClient, ImapError};

/// The decoded bytes of one part (or a range of them).
#[derive(Debug)]
pub struct PartData {
    pub bytes: Vec<u8>,
    /// Decoded size of the whole part.
    pub total: u64,
    /// The range served, when one was asked for.
    pub range: Option<ByteRange>,
    pub mime: String,
    pub filename: String,
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
            "invalid_part",
            format!("not a part specifier: {id}"),
        ))
    }
}

/// GET /v1/messages/{mailbox}/{uid}/parts/{part}
pub async fn get_part(
    c: &mut ImapClient,
    mailbox: &str,
    uid: u32,
    part_id: &str,
    range: Option<RangeRequest>,
) -> Result<PartData, ReadError> {
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
    let encoded = matches!(part.encoding.as_str(), "base64" | "quoted-printable");
    let binary = c.capabilities().has("BINARY") && encoded && !part.mime.starts_with("message/");
    match part_bytes(c, uid, &part, range, binary).await {
        // Dovecot refuses BINARY for content it cannot decode ([UNKNOWN-CTE]):
        // serve what can be decoded here instead.
        Err(ReadError::Imap(ImapError::No { .. })) if binary => {
            part_bytes(c, uid, &part, range, false).await
        }
        other => other,
    }
}

/// The bytes of `part`, decoded by the server (`binary`) or here.
async fn part_bytes(
    c: &mut ImapClient,
    uid: u32,
    part: &Part,
    range: Option<RangeRequest>,
    binary: bool,
) -> Result<PartData, ReadError> {
    let part_id = part.id.as_str();
    let set = uid.to_string();
    let encoded = matches!(part.encoding.as_str(), "base64" | "quoted-printable");
    let part = part.clone();
    let (item, size_item) = if binary {
        ("BINARY", Some(format!("BINARY.SIZE[{part_id}]")))
    } else {
        ("BODY", None)
    };
    let data = if encoded && !binary {
        // No BINARY: fetch the encoded part, decode here, then cut.
        let raw = fetch_section(c, uid, item, part_id, None).await?;
        let bytes = decode_transfer(&part.encoding, &raw);
        let total = bytes.len() as u64;
        match range {
            None => PartData {
                bytes,
                total,
                range: None,
                mime: part.mime,
                filename: part.filename,
            },
            Some(req) => {
                let r = req
                    .resolve(total)
                    .ok_or(ReadError::RangeNotSatisfiable(total))?;
                PartData {
                    bytes: bytes[r.start as usize..=r.end as usize].to_vec(),
                    total,
                    range: Some(r),
                    mime: part.mime,
                    filename: part.filename,
                }
            }
        }
    } else {
        match range {
            None => {
                let bytes = fetch_section(c, uid, item, part_id, None).await?;
                let total = bytes.len() as u64;
                PartData {
                    bytes,
                    total,
                    range: None,
                    mime: part.mime,
                    filename: part.filename,
                }
            }
            Some(req) => {
                let total = match size_item {
                    Some(size_item) => {
                        let r = c
                            .uid_fetch(&set, &format!("(UID {size_item})"), None, SMALL_BUDGET)
                            .await?;
                        r.messages
                            .into_iter()
                            .find(|x| x.uid == uid)
                            .and_then(|x| x.binary_sizes.first().map(|(_, n)| *n))
                            .ok_or(ReadError::MessageNotFound(uid))?
                    }
                    None => u64::from(part.size),
                };
                let r = req
                    .resolve(total)
                    .ok_or(ReadError::RangeNotSatisfiable(total))?;
                let bytes = fetch_section(c, uid, item, part_id, Some(r)).await?;
                let r = ByteRange {
                    start: r.start,
                    end: r.start + (bytes.len() as u64).max(1) - 1,
                };
                PartData {
                    bytes,
                    total,
                    range: Some(r),
                    mime: part.mime,
                    filename: part.filename,
                }
            }
        }
    };
    Ok(data)
}

/// `UID FETCH uid (BODY.PEEK[part]<range>)` (or BINARY.PEEK): the section's bytes.
async fn fetch_section(
    c: &mut ImapClient,
    uid: u32,
    item: &str,
    part_id: &str,
    partial: Option<ByteRange>,
) -> Result<Vec<u8>, ReadError> {
    let suffix = partial
        .map(|r| format!("<{}.{}>", r.start, r.len()))
        .unwrap_or_default();
    let items = format!("(UID {item}.PEEK[{part_id}]{suffix})");
    let r = c
        .uid_fetch(&uid.to_string(), &items, None, MAX_RESPONSE)
        .await?;
    r.messages
        .into_iter()
        .find(|x| x.uid == uid)
        .and_then(|x| x.sections.into_iter().next().map(|(_, b)| b))
        .ok_or(ReadError::MessageNotFound(uid))
}

fn decode_transfer(encoding: &str, raw: &[u8]) -> Vec<u8> {
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    let decoded = match encoding {
        "base64" => base64_decode(raw),
        "quoted-printable" => quoted_printable_decode(raw),
        _ => None,
    };
    decoded.unwrap_or_else(|| raw.to_vec())
}
