//! Logging in with an OAuth2 access token: `AUTHENTICATE XOAUTH2` or
//! `AUTHENTICATE OAUTHBEARER` (RFC 7628), the response sent with the
//! command when the server offers SASL-IR (RFC 4959), else after its `+`.
//!
//! A refused token is not refused at once: the server first sends an
//! error challenge (`+ <base64 JSON>`), which the client must answer (see
//! [`crate::sasl`]) before the tagged NO arrives. That NO becomes
//! [`ImapError::Auth`] carrying the server's text and the challenge's
//! status and scope. The messages themselves are built in [`crate::sasl`];
//! this file owns only the exchange on the connection.

use zeroize::Zeroizing;

use super::budget::SMALL_BUDGET;
use super::client::{Completion, ImapClient};
use super::error::ImapError;
use super::parser::{Code, Response, Status, Untagged};
use crate::sasl::{refusal_text, ErrorChallenge, OAuthMechanism};

impl ImapClient {
    /// Logs in as `user` with an OAuth2 bearer token. `mechanism` is the
    /// one to use (refused with [`crate::sasl::SaslError::NotOffered`] when
    /// the server does not advertise it); `None` picks `AUTH=OAUTHBEARER`,
    /// else `AUTH=XOAUTH2` ([`crate::sasl::SaslError::NoMechanism`] when
    /// neither is offered). A refused token gives [`ImapError::Auth`];
    /// capabilities are refreshed as after [`ImapClient::login`].
    pub async fn authenticate_oauth(
        &mut self,
        mechanism: Option<OAuthMechanism>,
        user: &str,
        access_token: &str,
    ) -> Result<(), ImapError> {
        if self.preauth {
            return Ok(());
        }
        let caps = &self.caps;
        let mechanism = OAuthMechanism::choose(mechanism, |m| caps.has(&format!("AUTH={m}")))?;
        let response = mechanism.initial_response(user, access_token)?;
        self.idle_done().await?;
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        let sasl_ir = self.caps.has("SASL-IR");
        let mut caps = None;
        let timeout = self.timeout;
        self.in_command = true;
        self.begin_budget(SMALL_BUDGET);
        let exchange = self.oauth_exchange(mechanism, &response, sasl_ir, &mut caps);
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ImapError::Timeout));
        self.end_budget();
        self.in_command = false;
        let (mut done, challenge) = result.map_err(|e| self.fail(e))?;
        if done.status == Status::No && done.code != Some(Code::Unavailable) {
            done.text = refusal_text(&done.text, challenge.as_ref());
        }
        self.complete_login(done, caps).await
    }

    /// Sends the command and the response, answers an error challenge, and
    /// reads to the tagged completion.
    async fn oauth_exchange(
        &mut self,
        mechanism: OAuthMechanism,
        response: &str,
        sasl_ir: bool,
        caps: &mut Option<Vec<String>>,
    ) -> Result<(Completion, Option<ErrorChallenge>), ImapError> {
        let tag = self.next_tag();
        let mut handler = |u: Untagged| match u {
            Untagged::Capability(list) => {
                *caps = Some(list);
                None
            }
            other => Some(other),
        };
        let mut line = Zeroizing::new(Vec::with_capacity(tag.len() + response.len() + 32));
        line.extend_from_slice(format!("{tag} AUTHENTICATE {}", mechanism.name()).as_bytes());
        if sasl_ir {
            line.push(b' ');
            line.extend_from_slice(response.as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.write(&line).await?;
        if !sasl_ir {
            if let Some(done) = self.wait_continuation(&tag, &mut handler).await? {
                return Ok((done, None));
            }
            line.clear();
            line.extend_from_slice(response.as_bytes());
            line.extend_from_slice(b"\r\n");
            self.write(&line).await?;
        }
        drop(line);
        let mut challenge = None;
        let mut answered = false;
        loop {
            match self.read_response().await? {
                Response::Continuation(_) if answered => {
                    return Err(ImapError::protocol(
                        "another SASL challenge after the answer",
                    ))
                }
                Response::Continuation(text) => {
                    answered = true;
                    challenge = ErrorChallenge::parse(&text);
                    let answer = format!("{}\r\n", mechanism.error_answer());
                    self.write(answer.as_bytes()).await?;
                }
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => return Ok((Completion { status, code, text }, challenge)),
                Response::Tagged { tag: t, .. } => {
                    return Err(ImapError::protocol(format!("unexpected tag {t}")))
                }
                Response::Untagged(u) => match handler(u) {
                    Some(rest) => self.queue_event(rest),
                    None => self.collect_last()?,
                },
            }
        }
    }
}
