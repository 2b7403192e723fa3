//! SASL for OAuth2 access tokens: `XOAUTH2` (Google's, also Microsoft's)
//! and `OAUTHBEARER` (RFC 7628), shared by the IMAP and the SMTP client.
//!
//! Pure: it builds the client's initial response, says how to answer the
//! server's error challenge, and reads that challenge (a base64 JSON object
//! such as `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`)
//! into a few short, cleaned fields. The clients own the exchange:
//!
//! ```text
//!  C: AUTHENTICATE XOAUTH2 <initial response>      (or AUTH XOAUTH2 … in SMTP)
//!  S: + <base64 JSON error challenge>              (334 … in SMTP; only on failure)
//!  C: <error answer>                               ("" for XOAUTH2, "AQ==" for OAUTHBEARER)
//!  S: NO …                                         (535 … in SMTP)
//! ```
//!
//! Above `crate::text` only. Credentials live in zeroized buffers and are
//! never part of an error or a `Debug` output.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use base64::Engine;
use zeroize::Zeroizing;

use crate::text::{trim, MAX_SERVER_TEXT};

/// Longest value kept of each field of an error challenge.
pub const MAX_CHALLENGE_FIELD: usize = 256;

/// Longest base64 challenge decoded; a real one is about a hundred bytes.
const MAX_CHALLENGE: usize = 4096;

/// A SASL mechanism that carries an OAuth2 bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// Google's `XOAUTH2`: `user=U ^A auth=Bearer T ^A ^A`. The one
    /// Microsoft 365 and Outlook.com speak.
    XOAuth2,
    /// RFC 7628 `OAUTHBEARER`: `n,a=U, ^A auth=Bearer T ^A ^A`.
    OAuthBearer,
}

impl std::fmt::Display for OAuthMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a token cannot be used with a server. None of them carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server advertises no OAuth2 mechanism.
    #[error("the server offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2")]
    NoMechanism,
    /// The mechanism asked for is not advertised by the server.
    #[error("the server does not offer AUTH={}", .0.name())]
    NotOffered(OAuthMechanism),
    /// The user name is empty or holds control characters.
    #[error("the user name cannot be sent in a SASL response (empty or control characters)")]
    BadUser,
    /// The token is empty or holds characters no bearer token has
    /// (RFC 6750: visible ASCII only).
    #[error("the access token is not a bearer token (empty, or characters outside visible ASCII)")]
    BadToken,
}

impl OAuthMechanism {
    /// The mechanism's registered name.
    pub fn name(self) -> &'static str {
        match self {
            OAuthMechanism::XOAuth2 => "XOAUTH2",
            OAuthMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism to use given what the server advertises (`offers`
    /// answers for a mechanism name): `wanted` when offered, or without a
    /// wish OAUTHBEARER (the standard) before XOAUTH2.
    pub fn choose(
        wanted: Option<OAuthMechanism>,
        offers: impl Fn(&str) -> bool,
    ) -> Result<OAuthMechanism, SaslError> {
        match wanted {
            Some(m) if offers(m.name()) => Ok(m),
            Some(m) => Err(SaslError::NotOffered(m)),
            None => [OAuthMechanism::OAuthBearer, OAuthMechanism::XOAuth2]
                .into_iter()
                .find(|m| offers(m.name()))
                .ok_or(SaslError::NoMechanism),
        }
    }

    /// The client's initial response, base64-encoded, in a buffer that is
    /// zeroed when dropped.
    pub fn initial_response(self, user: &str, token: &str) -> Result<Zeroizing<String>, SaslError> {
        if user.is_empty() || user.chars().any(char::is_control) {
            return Err(SaslError::BadUser);
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SaslError::BadToken);
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(
            user.len()
                .saturating_mul(3)
                .saturating_add(token.len())
                .saturating_add(32),
        ));
        match self {
            OAuthMechanism::XOAuth2 => {
                raw.extend_from_slice(b"user=");
                raw.extend_from_slice(user.as_bytes());
                raw.extend_from_slice(b"\x01auth=Bearer ");
            }
            OAuthMechanism::OAuthBearer => {
                // GS2 header with the user as authorization identity; a
                // saslname writes ',' and '=' as "=2C" and "=3D" (RFC 5801).
                raw.extend_from_slice(b"n,a=");
                for c in user.bytes() {
                    match c {
                        b',' => raw.extend_from_slice(b"=2C"),
                        b'=' => raw.extend_from_slice(b"=3D"),
                        other => raw.push(other),
                    }
                }
                raw.extend_from_slice(b",\x01auth=Bearer ");
            }
        }
        raw.extend_from_slice(token.as_bytes());
        raw.extend_from_slice(b"\x01\x01");
        Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(&*raw),
        ))
    }

    /// What the client answers an error challenge with, so that the server
    /// ends the exchange with its refusal: an empty response for XOAUTH2,
    /// the single byte 0x01 (`AQ==`) for OAUTHBEARER (RFC 7628 3.2.3).
    pub fn error_answer(self) -> &'static str {
        match self {
            OAuthMechanism::XOAuth2 => "",
            OAuthMechanism::OAuthBearer => "AQ==",
        }
    }
}

/// What a server's error challenge said, each field cut to
/// [`MAX_CHALLENGE_FIELD`] bytes with control characters made spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorChallenge {
    /// An HTTP-like status (`"400"`, `"401"` expired or invalid token,
    /// `"403"` the token lacks the scope).
    pub status: Option<String>,
    /// The scope the server wants.
    pub scope: Option<String>,
    /// The authentication schemes it takes (`"bearer"`).
    pub schemes: Option<String>,
}

impl ErrorChallenge {
    /// Reads a challenge as the server sent it (the base64 text after `+ `
    /// or `334 `). `None` when it is not base64 of a JSON object: the
    /// exchange goes on the same, without the detail.
    pub fn parse(text: &str) -> Option<ErrorChallenge> {
        let text = text.trim();
        if text.len() > MAX_CHALLENGE {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let serde_json::Value::Object(object) = serde_json::from_slice(&raw).ok()? else {
            return None;
        };
        let field = |name: &str| -> Option<String> {
            let mut value = match object.get(name)? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            trim(&mut value, MAX_CHALLENGE_FIELD);
            Some(value)
        };
        Some(ErrorChallenge {
            status: field("status"),
            scope: field("scope"),
            schemes: field("schemes"),
        })
    }

    /// `status 401, scope https://mail.google.com/` (what of it is present;
    /// `None` when neither is).
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = [("status", &self.status), ("scope", &self.scope)]
            .into_iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}")))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The text of a refusal: the server's final words, followed by what its
/// error challenge said when it said something; at most [`MAX_SERVER_TEXT`]
/// bytes, of which the server's words give way first.
pub fn refusal_text(server_text: &str, challenge: Option<&ErrorChallenge>) -> String {
    let mut text = server_text.to_owned();
    let Some(summary) = challenge.and_then(ErrorChallenge::summary) else {
        trim(&mut text, MAX_SERVER_TEXT);
        return text;
    };
    let suffix = format!(" ({summary})");
    trim(&mut text, MAX_SERVER_TEXT.saturating_sub(suffix.len()));
    text.push_str(&suffix);
    trim(&mut text, MAX_SERVER_TEXT);
    text
}

#[cfg(test)]
#[path = "sasl_tests.rs"]
mod tests;
