//! Parsing one complete server response into typed data.
//!
//! Input is a frame cut by [`super::framer::Framer`]: a line with any literals
//! inside it, ending in CRLF. The grammar is handled through a small token tree
//! ([`Value`]: atoms, numbers, strings, literals, NIL, lists; `BODY[…]<…>`
//! section specifiers are one atom) on which the few responses the gateway
//! needs are recognised; anything else is returned as [`Untagged::Other`]
//! instead of failing, so an unknown response never breaks a connection.
//! Never panics: every index is checked and nesting depth is bounded.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use super::lexer::Cursor;
use super::uidset::UidSet;

/// Most capabilities kept from one list: real servers advertise under a
/// hundred; the rest of a longer list is ignored.
pub const MAX_CAPABILITIES: usize = 256;
/// Longest capability name kept (`AUTH=SCRAM-SHA-256-PLUS`, `CONTEXT=SEARCH`
/// are about 25 bytes); longer names are ignored.
pub const MAX_CAPABILITY_LEN: usize = 64;
/// Longest keyword kept for an unknown response.
const MAX_KEYWORD: usize = 32;
/// Most ranges a set in ESEARCH or VANISHED may have.
const MAX_SET_RANGES: usize = 4_000_000;

/// A token of a server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom, including flags (`\Seen`) and section specifiers (`BODY[1]<0>`).
    Atom(String),
    /// An atom made only of digits that fits in 64 bits.
    Number(u64),
    /// A quoted string or a literal, unescaped.
    Str(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

impl Value {
    /// The number, when this is one that fits in 32 bits.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::Number(n) => u32::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The number, when this is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes of a string, literal, atom or number (an astring); `None` for NIL and lists.
    pub fn as_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Value::Str(b) => Some(b.as_slice().into()),
            Value::Atom(a) => Some(a.as_bytes().into()),
            Value::Number(n) => Some(n.to_string().into_bytes().into()),
            Value::Nil | Value::List(_) => None,
        }
    }
}

/// The status word of a tagged or untagged condition response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Preauth,
    Bye,
}

/// A response code: the bracketed part after a status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    AuthenticationFailed,
    /// RFC 5530: temporary failure, try again later.
    Unavailable,
    Capability(Vec<String>),
    UidValidity(u32),
    UidNext(u32),
    HighestModSeq(u64),
    /// RFC 4315: `[APPENDUID uidvalidity uid]` after APPEND.
    AppendUid {
        uidvalidity: u32,
        uid: u32,
    },
    NoModSeq,
    ReadOnly,
    ReadWrite,
    /// Any other code, by name (upper-cased).
    Other(String),
}

/// A tagged completion, a condition or a continuation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Tagged {
        tag: String,
        status: Status,
        code: Option<Code>,
        text: String,
    },
    Untagged(Untagged),
    /// `+ text`: the server waits for more of the command.
    Continuation(String),
}

/// The untagged responses the client understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    /// `* OK/NO/BAD/PREAUTH/BYE [code] text`.
    Condition {
        status: Status,
        code: Option<Code>,
        text: String,
    },
    Capability(Vec<String>),
    Enabled(Vec<String>),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    /// RFC 7162: `* VANISHED [(EARLIER)] uid-set`.
    Vanished {
        earlier: bool,
        uids: UidSet,
    },
    /// `* n FETCH (...)`: item names upper-cased, with their values.
    Fetch {
        seq: u32,
        items: Vec<(String, Value)>,
    },
    /// `* STATUS mailbox (...)`: the mailbox name as sent (maybe modified UTF-7).
    Status {
        mailbox: Vec<u8>,
        items: Vec<(String, u64)>,
    },
    /// `* SEARCH n n …`, as a compact set.
    Search(UidSet),
    /// `* LIST (attributes) delimiter mailbox`: the name as sent.
    List {
        attributes: Vec<String>,
        delimiter: Option<u8>,
        mailbox: Vec<u8>,
    },
    /// RFC 4731: `* ESEARCH [(TAG "t")] [UID] name value ...`, names
    /// upper-cased; `ALL`'s set read into `all`, the other items as sent.
    Esearch {
        uid: bool,
        all: Option<UidSet>,
        items: Vec<(String, Value)>,
    },
    /// RFC 4467: `* GENURLAUTH url...`, the authorized URLs.
    GenUrlAuth(Vec<Vec<u8>>),
    /// RFC 4467: `* URLFETCH url data…`: each URL with its bytes (`None`: NIL, refused).
    UrlFetch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// Anything else, by its keyword (upper-cased).
    Other(String),
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse response at byte {at}: {what}")]
pub struct ParseError {
    pub at: usize,
    pub what: &'static str,
}

/// Parses one complete response (as cut by the framer, CRLF included).
pub fn parse_response(frame: &[u8]) -> Result<Response, ParseError> {
    let mut p = Cursor::new(frame);
    if p.eat(b'+') {
        p.eat(b' ');
        return Ok(Response::Continuation(p.rest_text()));
    }
    if p.eat(b'*') {
        p.expect_space()?;
        return parse_untagged(&mut p).map(Response::Untagged);
    }
    let tag = p.word();
    if tag.is_empty() {
        return Err(p.error("missing tag"));
    }
    p.expect_space()?;
    let status = parse_status(&p.word()).ok_or_else(|| p.error("unknown status"))?;
    let (code, text) = parse_resp_text(&mut p);
    Ok(Response::Tagged {
        tag,
        status,
        code,
        text,
    })
}

fn parse_status(word: &str) -> Option<Status> {
    Some(match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        "PREAUTH" => Status::Preauth,
        "BYE" => Status::Bye,
        _ => return None,
    })
}

fn parse_untagged(p: &mut Cursor<'_>) -> Result<Untagged, ParseError> {
    let first = p.word();
    if let Ok(n) = first.parse::<u32>() {
        p.expect_space()?;
        let keyword = p.word().to_ascii_uppercase();
        return Ok(match keyword.as_str() {
            "EXISTS" => Untagged::Exists(n),
            "RECENT" => Untagged::Recent(n),
            "EXPUNGE" => Untagged::Expunge(n),
            "FETCH" => {
                p.skip_spaces();
                let Value::List(list) = p.value(0)? else {
                    return Err(p.error("FETCH without list"));
                };
                Untagged::Fetch {
                    seq: n,
                    items: pairs(list),
                }
            }
            _ => Untagged::Other(short(keyword)),
        });
    }
    let keyword = first.to_ascii_uppercase();
    if let Some(status) = parse_status(&keyword) {
        let (code, text) = parse_resp_text(p);
        return Ok(Untagged::Condition { status, code, text });
    }
    Ok(match keyword.as_str() {
        "CAPABILITY" => Untagged::Capability(p.atoms_to_end(MAX_CAPABILITIES, MAX_CAPABILITY_LEN)),
        "ENABLED" => Untagged::Enabled(p.atoms_to_end(MAX_CAPABILITIES, MAX_CAPABILITY_LEN)),
        "URLFETCH" => {
            let values = p.values_to_end()?;
            let mut out = Vec::with_capacity(values.len().div_ceil(2));
            let mut it = values.into_iter();
            while let Some(url) = it.next() {
                let Some(url) = url.as_bytes().map(|b| b.into_owned()) else {
                    return Err(p.error("URLFETCH without URL"));
                };
                let data = match it.next() {
                    Some(Value::Str(b)) => Some(b),
                    _ => None,
                };
                out.push((url, data));
            }
            Untagged::UrlFetch(out)
        }
        "GENURLAUTH" => Untagged::GenUrlAuth(
            p.values_to_end()?
                .iter()
                .filter_map(|v| v.as_bytes().map(|b| b.into_owned()))
                .collect(),
        ),
        // Read without a token per number; a trailing `(MODSEQ n)`
        // (CONDSTORE) is not a UID.
        "SEARCH" => Untagged::Search(p.numbers_to_end()?),
        "STATUS" => {
            p.skip_spaces();
            let mailbox = p.value(0)?.as_bytes().map(|b| b.into_owned());
            let mailbox = mailbox.ok_or_else(|| p.error("STATUS without mailbox"))?;
            p.skip_spaces();
            let Value::List(list) = p.value(0)? else {
                return Err(p.error("STATUS without list"));
            };
            let items = pairs(list)
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_u64()?)))
                .collect();
            Untagged::Status { mailbox, items }
        }
        "LIST" | "LSUB" => {
            p.skip_spaces();
            let Value::List(attrs) = p.value(0)? else {
                return Err(p.error("LIST without attributes"));
            };
            let attributes = attrs
                .into_iter()
                .filter_map(|v| match v {
                    Value::Atom(a) => Some(a),
                    _ => None,
                })
                .collect();
            p.skip_spaces();
            let delimiter = match p.value(0)? {
                Value::Str(b) => b.first().copied(),
                Value::Atom(a) => a.bytes().next(),
                _ => None,
            };
            p.skip_spaces();
            let mailbox = p
                .value(0)?
                .as_bytes()
                .map(|b| b.into_owned())
                .ok_or_else(|| p.error("LIST without mailbox"))?;
            Untagged::List {
                attributes,
                delimiter,
                mailbox,
            }
        }
        "ESEARCH" => {
            let mut values = p.values_to_end()?.into_iter().peekable();
            if matches!(values.peek(), Some(Value::List(_))) {
                values.next();
            }
            let uid =
                matches!(values.peek(), Some(Value::Atom(a)) if a.eq_ignore_ascii_case("UID"));
            if uid {
                values.next();
            }
            let mut all = None;
            let mut items = pairs(values.collect());
            if let Some(at) = items.iter().position(|(k, _)| k == "ALL") {
                let (_, value) = items.swap_remove(at);
                let set = match &value {
                    Value::Atom(a) => UidSet::parse(a.as_bytes(), MAX_SET_RANGES),
                    Value::Number(n) => u32::try_from(*n).ok().map(|n| {
                        let mut set = UidSet::new();
                        set.push(n);
                        set
                    }),
                    _ => None,
                };
                all = Some(set.ok_or_else(|| p.error("unusable ESEARCH set"))?);
            }
            Untagged::Esearch { uid, all, items }
        }
        "VANISHED" => {
            p.skip_spaces();
            let mut earlier = false;
            if p.peek() == Some(b'(') {
                if let Value::List(tags) = p.value(0)? {
                    earlier = tags
                        .iter()
                        .any(|t| matches!(t, Value::Atom(a) if a.eq_ignore_ascii_case("EARLIER")));
                }
                p.skip_spaces();
            }
            let uids = UidSet::parse(p.word_bytes(), MAX_SET_RANGES)
                .ok_or_else(|| p.error("unusable VANISHED set"))?;
            Untagged::Vanished { earlier, uids }
        }
        _ => Untagged::Other(short(keyword)),
    })
}

/// A keyword kept for reference only, cut short.
fn short(mut keyword: String) -> String {
    if keyword.len() > MAX_KEYWORD {
        keyword = super::error::cut(keyword, MAX_KEYWORD);
    }
    keyword
}

/// Turns `(KEY value KEY value ...)` into pairs with upper-cased keys.
fn pairs(list: Vec<Value>) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(list.len().div_ceil(2));
    let mut it = list.into_iter();
    while let Some(key) = it.next() {
        let key = match key {
            Value::Atom(a) => a.to_ascii_uppercase(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let value = it.next().unwrap_or(Value::Nil);
        out.push((key, value));
    }
    out
}

/// `[code] text` after a status word. A malformed code is kept by name only.
fn parse_resp_text(p: &mut Cursor<'_>) -> (Option<Code>, String) {
    p.skip_spaces();
    let mut code = None;
    if p.eat(b'[') {
        let name = p.word_until_bracket().to_ascii_uppercase();
        let start = p.pos;
        let mut args = Vec::new();
        let mut ok = true;
        loop {
            p.skip_spaces();
            if p.eat(b']') {
                break;
            }
            match p.value(0) {
                Ok(v) => args.push(v),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            // Skip to the closing bracket of free-form codes.
            p.pos = start;
            while let Some(b) = p.peek() {
                p.pos = p.pos.saturating_add(1);
                if b == b']' {
                    break;
                }
            }
        }
        code = Some(make_code(name, args, ok));
        p.skip_spaces();
    }
    (code, p.rest_text())
}

fn make_code(name: String, args: Vec<Value>, ok: bool) -> Code {
    let num = || args.first().and_then(Value::as_u64);
    let code = match name.as_str() {
        "ALERT" => Some(Code::Alert),
        "AUTHENTICATIONFAILED" => Some(Code::AuthenticationFailed),
        "UNAVAILABLE" => Some(Code::Unavailable),
        "NOMODSEQ" => Some(Code::NoModSeq),
        "READ-ONLY" => Some(Code::ReadOnly),
        "READ-WRITE" => Some(Code::ReadWrite),
        "CAPABILITY" if ok => Some(Code::Capability(
            args.iter()
                .filter_map(|v| match v {
                    Value::Atom(a) if a.len() <= MAX_CAPABILITY_LEN => Some(a.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .take(MAX_CAPABILITIES)
                .collect(),
        )),
        "UIDVALIDITY" => num()
            .and_then(|n| u32::try_from(n).ok())
            .map(Code::UidValidity),
        "UIDNEXT" => num().and_then(|n| u32::try_from(n).ok()).map(Code::UidNext),
        "HIGHESTMODSEQ" => num().map(Code::HighestModSeq),
        "APPENDUID" => match (
            args.first().and_then(Value::as_u32),
            args.get(1).and_then(Value::as_u32),
        ) {
            (Some(uidvalidity), Some(uid)) => Some(Code::AppendUid { uidvalidity, uid }),
            _ => None,
        },
        _ => None,
    };
    code.unwrap_or_else(|| Code::Other(short(name)))
}

#[cfg(test)]
#[path = "parser_tests.rs"]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests;
