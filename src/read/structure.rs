//! The MIME structure of a message from its BODYSTRUCTURE (RFC 3501 7.4.2),
//! interpreted once for the read and the send path alike: a
//! [`BodyStructure`] is a flat, depth-first list of parts with IMAP part
//! specifiers, types, sizes, charsets, file names and dispositions, and the
//! only place that decides which section a part is. Pure; never panics on odd
//! input (unknown shapes become `application/octet-stream`, nesting is
//! bounded by the parser).
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use crate::imap::Value;

/// One part of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// IMAP part specifier: `1`, `2.1`; `""` for a multipart message itself.
    pub id: String,
    /// Lower-case media type (`text/plain`, `multipart/mixed`).
    pub mime: String,
    /// The declared size in 32 bits; 0 when absent or larger.
    pub size: u32,
    /// The encoded size of the body as declared; `None` when absent (always
    /// for multiparts, whose size the structure does not give).
    pub octets: Option<u64>,
    pub charset: String,
    pub filename: String,
    pub disposition: String,
    pub encoding: String,
    pub content_id: String,
    /// Inside an attached message (message/rfc822).
    pub nested: bool,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }

    /// Whether a phone would show it as an attachment.
    pub fn is_attachment(&self) -> bool {
        if self.is_multipart() {
            return false;
        }
        // Named inline parts (images of an HTML newsletter) are not.
        self.disposition == "attachment"
            || self.mime == "message/rfc822"
            || (!self.filename.is_empty()
                && self.disposition != "inline"
                && !self.mime.starts_with("text/"))
    }
}

/// A message's BODYSTRUCTURE, typed: its parts depth first.
///
/// An attached message (message/rfc822) is followed by the parts of the
/// message inside it; when that message is multipart, its multipart part
/// has the attached part's section (as in IMAP, where `3.1` is the first part
/// of the message attached as `3`), so a section may name two parts: the
/// attached message first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyStructure {
    parts: Vec<Part>,
}

impl BodyStructure {
    /// Interprets a BODYSTRUCTURE value; anything but a list has no parts.
    pub fn from_value(body: &Value) -> Self {
        let mut parts = Vec::new();
        walk(body, "", false, &mut parts);
        BodyStructure { parts }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }

    /// The part named by IMAP section `section` (`1`, `2.1`; not `.MIME`).
    /// A message that is not multipart has one part, `1`.
    pub fn part(&self, section: &str) -> Option<&Part> {
        if section.is_empty() {
            return None;
        }
        self.parts.iter().find(|p| p.id == section)
    }
}

/// Flattens a BODYSTRUCTURE into parts, depth first.
pub fn parts(body: &Value) -> Vec<Part> {
    BodyStructure::from_value(body).into_parts()
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `("name" "value" ...)` parameter lists as lower-case keys.
fn params(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::List(list)) = v else {
        return Vec::new();
    };
    list.chunks(2)
        .map(|kv| {
            (
                text(kv.first()).to_ascii_lowercase(),
                crate::read::convert::decode_words(&text(kv.get(1))),
            )
        })
        .collect()
}

fn param(list: &[(String, String)], name: &str) -> String {
    list.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The section of child `index` (from 0) of the part at `parent`.
fn child_id(parent: &str, index: usize) -> String {
    let n = index.saturating_add(1);
    if parent.is_empty() {
        n.to_string()
    } else {
        format!("{parent}.{n}")
    }
}

fn walk(body: &Value, id: &str, nested: bool, out: &mut Vec<Part>) {
    let Value::List(items) = body else {
        return;
    };
    if matches!(items.first(), Some(Value::List(_))) {
        let children: Vec<&Value> = items
            .iter()
            .take_while(|v| matches!(v, Value::List(_)))
            .collect();
        let subtype = text(items.get(children.len())).to_ascii_lowercase();
        out.push(Part {
            id: id.to_string(),
            mime: format!("multipart/{subtype}"),
            nested,
            ..Default::default()
        });
        for (i, child) in children.into_iter().enumerate() {
            walk(child, &child_id(id, i), nested, out);
        }
        return;
    }
    // A single part at the top level is part 1.
    let id = if id.is_empty() {
        "1".to_string()
    } else {
        id.to_string()
    };
    let main = text(items.first()).to_ascii_lowercase();
    let sub = text(items.get(1)).to_ascii_lowercase();
    let mime = if main.is_empty() || sub.is_empty() {
        "application/octet-stream".to_string()
    } else {
        format!("{main}/{sub}")
    };
    let type_params = params(items.get(2));
    let octets = items.get(6).and_then(Value::as_u64);
    // Extension data starts after type-specific fields.
    // The MD5, then the disposition.
    let disposition_at = match (main.as_str(), sub.as_str()) {
        ("text", _) => 9,
        ("message", "rfc822") | ("message", "global") => 11,
        _ => 8,
    };
    let (disposition, disp_params) = match items.get(disposition_at) {
        Some(Value::List(d)) => (text(d.first()).to_ascii_lowercase(), params(d.get(1))),
        _ => (String::new(), Vec::new()),
    };
    let mut filename = param(&disp_params, "filename");
    if filename.is_empty() {
        filename = param(&type_params, "name");
    }
    out.push(Part {
        id: id.clone(),
        mime: mime.clone(),
        size: octets.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        octets,
        charset: param(&type_params, "charset"),
        filename,
        disposition,
        encoding: text(items.get(5)).to_ascii_lowercase(),
        content_id: text(items.get(3)),
        nested,
    });
    if mime == "message/rfc822" || mime == "message/global" {
        if let Some(inner @ Value::List(inner_items)) = items.get(8) {
            if matches!(inner_items.first(), Some(Value::List(_))) {
                walk(inner, &id, true, out);
            } else {
                walk(inner, &child_id(&id, 0), true, out);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::imap::parser::{parse_response, Response, Untagged};

    fn structure(line: &str) -> Value {
        let Ok(Response::Untagged(Untagged::Fetch { items, .. })) = parse_response(line.as_bytes())
        else {
            panic!("not a fetch");
        };
        items
            .into_iter()
            .find(|(k, _)| k == "BODYSTRUCTURE")
            .unwrap()
            .1
    }

    #[test]
    fn mixed_with_alternative_attachment_and_message() {
        let v = structure(concat!(
            "* 1 FETCH (BODYSTRUCTURE (",
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 10 1 NIL NIL NIL NIL)",
            "(\"text\" \"html\" (\"charset\" \"iso-8859-1\") NIL NIL \"7bit\" 20 1 NIL NIL NIL NIL)",
            " \"alternative\" (\"boundary\" \"b\") NIL NIL NIL)",
            "(\"application\" \"pdf\" (\"name\" \"=?UTF-8?Q?R=C3=A9sum=C3=A9.pdf?=\") NIL NIL \"base64\" 300 NIL (\"attachment\" NIL) NIL NIL)",
            "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 50 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) ",
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)",
            " \"mixed\" (\"boundary\" \"a\") NIL NIL NIL))\r\n"
        ));
        let p = parts(&v);
        let ids: Vec<(&str, &str)> = p.iter().map(|p| (p.id.as_str(), p.mime.as_str())).collect();
        assert_eq!(
            ids,
            vec![
                ("", "multipart/mixed"),
                ("1", "multipart/alternative"),
                ("1.1", "text/plain"),
                ("1.2", "text/html"),
                ("2", "application/pdf"),
                ("3", "message/rfc822"),
                ("3.1", "text/plain"),
            ]
        );
        assert_eq!(p[2].charset, "utf-8");
        assert_eq!(p[2].encoding, "quoted-printable");
        assert_eq!(p[4].filename, "Résumé.pdf");
        assert_eq!(p[4].disposition, "attachment");
        assert!(p[4].is_attachment());
        assert!(p[5].is_attachment());
        assert!(p[6].nested);
        assert!(!p[2].is_attachment());
        let inline_image = Part {
            mime: "image/png".into(),
            filename: "logo.png".into(),
            disposition: "inline".into(),
            ..Default::default()
        };
        assert!(!inline_image.is_attachment());
    }

    #[test]
    fn single_part_and_garbage() {
        let v = structure(
            "* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 12 1))\r\n",
        );
        let p = parts(&v);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].id, "1");
        assert_eq!(p[0].mime, "text/plain");
        assert_eq!(p[0].size, 12);
        assert!(parts(&Value::Nil).is_empty());
        assert_eq!(
            parts(&Value::List(vec![Value::Nil]))[0].mime,
            "application/octet-stream"
        );
    }

    #[test]
    fn sections_name_parts() {
        let s = BodyStructure::from_value(&structure(concat!(
            "* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)",
            "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") NIL NIL \"base64\" 5000000000 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL NIL)",
            "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 50 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) ",
            "((\"text\" \"plain\" NIL NIL NIL \"7bit\" 5 1)(\"image\" \"png\" NIL NIL NIL \"base64\" 9) \"mixed\") 3)",
            " \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n"
        )));
        let found = |section: &str| s.part(section).map(|p| (p.mime.as_str(), p.octets));
        assert_eq!(found("1"), Some(("text/plain", Some(4))));
        assert_eq!(
            found("2"),
            Some(("application/octet-stream", Some(5_000_000_000)))
        );
        assert_eq!(s.part("2").unwrap().size, 0, "too large for 32 bits");
        // The attached message first, then its multipart body, then its parts.
        assert_eq!(found("3"), Some(("message/rfc822", Some(50))));
        assert_eq!(found("3.1"), Some(("text/plain", Some(5))));
        assert_eq!(found("3.2"), Some(("image/png", Some(9))));
        for absent in ["", "0", "4", "1.1", "x", "01", "3.3", "2.1"] {
            assert_eq!(found(absent), None, "{absent}");
        }
        assert_eq!(
            found("3.1").map(|_| s.part("3.1").unwrap().nested),
            Some(true)
        );
    }

    #[test]
    fn a_message_that_is_one_attached_message() {
        // The body of the message is itself a message: `1` is that message,
        // `1.1` the text inside it.
        let value = structure(concat!(
            "* 1 FETCH (BODYSTRUCTURE (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 80 ",
            "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) ",
            "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 12 1) 4))\r\n"
        ));
        let s = BodyStructure::from_value(&value);
        let ids: Vec<(&str, &str)> = s
            .parts()
            .iter()
            .map(|p| (p.id.as_str(), p.mime.as_str()))
            .collect();
        assert_eq!(ids, vec![("1", "message/rfc822"), ("1.1", "text/plain")]);
        assert_eq!(s.part("1").unwrap().octets, Some(80));
        // The send path attaches the same parts.
        let attach = |section| crate::send::prepare::part_size(&value, section);
        assert_eq!(attach("1"), Some((80, false)));
        assert_eq!(attach("1.1"), Some((12, false)));
        assert_eq!(attach("2"), None);
    }
}
