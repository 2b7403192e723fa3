//! One SMTP submission connection, owned by the send job using it.
//!
//! Every command waits for its reply (no pipelining: a job sends a handful
//! of commands). Each read and write is bounded by the client's timeout; an
//! I/O error or timeout leaves the connection unusable. `written` counts the
//! bytes sent, for the send job's accounting.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::reply::{parse_reply, Ehlo, Reply, ReplyError};
use crate::error::ErrorClass;
use crate::net::{self, MaybeTls, NetError, Security, TlsConnector, Upstream};
use crate::sasl::{refusal_text, ErrorChallenge, OAuthMechanism, SaslError};

/// Why an SMTP step failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("SMTP I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMTP server did not answer in time")]
    Timeout,
    #[error("SMTP server closed the connection")]
    Closed,
    #[error("SMTP protocol error: {0}")]
    Protocol(String),
    #[error("SMTP server does not offer STARTTLS")]
    StarttlsUnavailable,
    /// An OAuth2 login cannot be tried: no mechanism for it, or a user
    /// name or token that cannot be sent.
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// The server answered a command with 4xx or 5xx.
    #[error("{command} refused: {}", reply.text())]
    Rejected { command: &'static str, reply: Reply },
}

impl From<ReplyError> for SmtpError {
    fn from(e: ReplyError) -> Self {
        SmtpError::Protocol(e.to_string())
    }
}

impl SmtpError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SmtpError::Net(e) => e.class(),
            SmtpError::Io(_) | SmtpError::Timeout | SmtpError::Closed => ErrorClass::Transient,
            SmtpError::Protocol(_) => ErrorClass::Protocol,
            SmtpError::StarttlsUnavailable | SmtpError::Sasl(_) => ErrorClass::Permanent,
            SmtpError::Rejected { command, reply } => {
                if *command == "AUTH" && reply.code == 535 {
                    ErrorClass::Auth
                } else if reply.is_transient() {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
        }
    }

    /// The server's reply, when it answered with one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SmtpError::Rejected { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// Bytes per BDAT chunk and per DATA write.
const CHUNK: usize = 64 * 1024;
/// Bytes of one unfinished reply line after which the buffer is parsed
/// again anyway: the longest line a reply may have.
const REPARSE_AFTER: usize = 4096;

/// A connection to a submission server.
pub struct SmtpClient {
    stream: MaybeTls,
    buf: Vec<u8>,
    timeout: Duration,
    ehlo: Ehlo,
    /// Bytes sent to the server so far.
    pub written: u64,
}

impl SmtpClient {
    /// Connects, reads the greeting, says EHLO and upgrades with STARTTLS
    /// when `upstream.security` asks for it (refusing a server without it).
    pub async fn connect(
        upstream: &Upstream,
        tls: &TlsConnector,
        timeout: Duration,
        helo_name: &str,
    ) -> Result<Self, SmtpError> {
        let stream = net::connect(upstream, tls, timeout).await?;
        let mut client = SmtpClient {
            stream,
            buf: Vec::new(),
            timeout,
            ehlo: Ehlo::default(),
            written: 0,
        };
        client.expect("greeting", |r| r.code == 220).await?;
        client.say_ehlo(helo_name).await?;
        if upstream.security == Security::Starttls {
            if !client.ehlo.has("STARTTLS") {
                return Err(SmtpError::StarttlsUnavailable);
            }
            client.command("STARTTLS", b"STARTTLS\r\n", 220).await?;
            if !client.buf.is_empty() {
                return Err(SmtpError::Protocol("data injected before TLS".into()));
            }
            let plain = client.stream;
            client.stream = tokio::time::timeout(timeout, plain.upgrade(tls, &upstream.host))
                .await
                .map_err(|_| SmtpError::Timeout)??;
            client.say_ehlo(helo_name).await?;
        }
        Ok(client)
    }

    /// The extensions of the last EHLO.
    pub fn ehlo(&self) -> &Ehlo {
        &self.ehlo
    }

    async fn say_ehlo(&mut self, helo_name: &str) -> Result<(), SmtpError> {
        let line = format!("EHLO {}\r\n", clean(helo_name));
        let reply = self.command("EHLO", line.as_bytes(), 250).await?;
        self.ehlo = Ehlo::from_reply(&reply);
        Ok(())
    }

    /// Authenticates with PLAIN (or LOGIN when only that is offered).
    pub async fn auth(&mut self, username: &str, password: &str) -> Result<(), SmtpError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if !self.ehlo.auth("PLAIN") && self.ehlo.auth("LOGIN") {
            self.command("AUTH", b"AUTH LOGIN\r\n", 334).await?;
            let user = format!("{}\r\n", b64.encode(username));
            self.command("AUTH", user.as_bytes(), 334).await?;
            let pass = line_of(&[], password.as_bytes());
            self.command("AUTH", pass.as_bytes(), 235).await?;
            return Ok(());
        }
        let mut blob =
            zeroize::Zeroizing::new(Vec::with_capacity(username.len() + password.len() + 2));
        blob.push(0);
        blob.extend_from_slice(username.as_bytes());
        blob.push(0);
        blob.extend_from_slice(password.as_bytes());
        let line = line_of(b"AUTH PLAIN ", &blob);
        self.command("AUTH", line.as_bytes(), 235).await?;
        Ok(())
    }

    /// Authenticates as `user` with an OAuth2 bearer token: `AUTH XOAUTH2`
    /// or `AUTH OAUTHBEARER` with the initial response. `mechanism` is the
    /// one to use (refused with [`SaslError::NotOffered`] when EHLO does not
    /// list it); `None` picks OAUTHBEARER, else XOAUTH2
    /// ([`SaslError::NoMechanism`] when neither is listed). A refused token
    /// is answered with a 334 error challenge, which is answered in turn;
    /// the final refusal (535: [`ErrorClass::Auth`]) carries the
    /// challenge's status and scope at the end of its last line.
    pub async fn auth_oauth(
        &mut self,
        mechanism: Option<OAuthMechanism>,
        user: &str,
        access_token: &str,
    ) -> Result<(), SmtpError> {
        let ehlo = &self.ehlo;
        let mechanism = OAuthMechanism::choose(mechanism, |m| ehlo.auth(m))?;
        let response = mechanism.initial_response(user, access_token)?;
        // Built in place, so that no copy of the token is left unzeroed.
        let mut line = zeroize::Zeroizing::new(String::with_capacity(response.len() + 32));
        for piece in ["AUTH ", mechanism.name(), " ", response.as_str(), "\r\n"] {
            line.push_str(piece);
        }
        drop(response);
        self.write(line.as_bytes()).await?;
        drop(line);
        let mut reply = self.read_reply().await?;
        let mut challenge = None;
        if reply.code == 334 {
            challenge = reply.lines.first().and_then(|c| ErrorChallenge::parse(c));
            let answer = format!("{}\r\n", mechanism.error_answer());
            self.write(answer.as_bytes()).await?;
            reply = self.read_reply().await?;
        }
        match reply.code {
            235 => Ok(()),
            400.. => {
                if let Some(last) = reply.lines.last_mut() {
                    *last = refusal_text(last, challenge.as_ref());
                }
                Err(SmtpError::Rejected {
                    command: "AUTH",
                    reply,
                })
            }
            _ => Err(SmtpError::Protocol(format!(
                "unexpected reply to AUTH: {}",
                reply.text()
            ))),
        }
    }

    /// `MAIL FROM:<from>` with `SIZE=` when the server knows SIZE and `BODY=8BITMIME` when offered.
    pub async fn mail_from(&mut self, from: &str, size: Option<u64>) -> Result<Reply, SmtpError> {
        let mut line = format!("MAIL FROM:<{}>", clean(from));
        if let (Some(size), true) = (size, self.ehlo.has("SIZE")) {
            line.push_str(&format!(" SIZE={size}"));
        }
        if self.ehlo.has("8BITMIME") {
            line.push_str(" BODY=8BITMIME");
        }
        line.push_str("\r\n");
        self.command("MAIL FROM", line.as_bytes(), 250).await
    }

    /// `RCPT TO:<to>`.
    pub async fn rcpt_to(&mut self, to: &str) -> Result<Reply, SmtpError> {
        let line = format!("RCPT TO:<{}>\r\n", clean(to));
        self.command("RCPT TO", line.as_bytes(), 250).await
    }

    /// `BURL <url> LAST`: the server fetches the message from IMAP itself.
    pub async fn burl_last(&mut self, url: &str) -> Result<Reply, SmtpError> {
        let line = format!("BURL {} LAST\r\n", clean(url));
        self.command("BURL", line.as_bytes(), 250).await
    }

    /// Sends `size` bytes of message from `reader`: BDAT chunks when the
    /// server offers CHUNKING, otherwise DATA with dot-stuffing. The reader
    /// must hold CRLF line ends.
    pub async fn send_message<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        size: u64,
    ) -> Result<Reply, SmtpError> {
        if self.ehlo.has("CHUNKING") {
            self.send_bdat(reader, size).await
        } else {
            self.send_data(reader).await
        }
    }

    async fn send_bdat<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        size: u64,
    ) -> Result<Reply, SmtpError> {
        let mut chunk = vec![0u8; CHUNK];
        let mut left = size;
        loop {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = read_full(reader, &mut chunk[..want], self.timeout).await?;
            if got < want {
                return Err(SmtpError::Protocol("message shorter than announced".into()));
            }
            left -= got as u64;
            let last = left == 0;
            let head = if last {
                format!("BDAT {got} LAST\r\n")
            } else {
                format!("BDAT {got}\r\n")
            };
            self.write(head.as_bytes()).await?;
            self.write(&chunk[..got]).await?;
            let reply = self.read_reply().await?;
            if !reply.is_positive() {
                return Err(SmtpError::Rejected {
                    command: "BDAT",
                    reply,
                });
            }
            if last {
                return Ok(reply);
            }
        }
    }

    async fn send_data<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Reply, SmtpError> {
        self.command("DATA", b"DATA\r\n", 354).await?;
        let mut stuffer = DotStuffer::default();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let got = tokio::time::timeout(self.timeout, reader.read(&mut chunk))
                .await
                .map_err(|_| SmtpError::Timeout)??;
            if got == 0 {
                break;
            }
            let out = stuffer.stuff(&chunk[..got]);
            self.write(&out).await?;
        }
        let end = stuffer.finish();
        self.write(&end).await?;
        let reply = self.read_reply().await?;
        if !reply.is_positive() {
            return Err(SmtpError::Rejected {
                command: "DATA",
                reply,
            });
        }
        Ok(reply)
    }

    /// RSET: ends a failed transaction so the connection can be reused.
    pub async fn rset(&mut self) -> Result<(), SmtpError> {
        self.command("RSET", b"RSET\r\n", 250).await.map(|_| ())
    }

    /// QUIT, ignoring what the server says.
    pub async fn quit(mut self) {
        let _ = self.write(b"QUIT\r\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.read_reply()).await;
        let _ = self.stream.shutdown().await;
    }

    /// Sends `line` and expects a reply with the code `want`.
    async fn command(
        &mut self,
        command: &'static str,
        line: &[u8],
        want: u16,
    ) -> Result<Reply, SmtpError> {
        self.write(line).await?;
        self.expect(command, |r| {
            r.code == want || (want == 250 && r.is_positive())
        })
        .await
    }

    async fn expect(
        &mut self,
        command: &'static str,
        ok: impl Fn(&Reply) -> bool,
    ) -> Result<Reply, SmtpError> {
        let reply = self.read_reply().await?;
        if ok(&reply) {
            Ok(reply)
        } else if reply.code >= 400 {
            Err(SmtpError::Rejected { command, reply })
        } else {
            Err(SmtpError::Protocol(format!(
                "unexpected reply to {command}: {}",
                reply.text()
            )))
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| SmtpError::Timeout)??;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Reads one reply. The buffer is parsed again only when a line has
    /// ended, or when the unfinished line has grown past [`REPARSE_AFTER`]
    /// (so an overlong line is refused at once): a server trickling a long
    /// multi-line reply a byte at a time would otherwise have it parsed
    /// from the start at every byte.
    async fn read_reply(&mut self) -> Result<Reply, SmtpError> {
        // Where the unfinished last line of the buffer begins.
        let mut line_start = line_start_after(&self.buf, 0);
        // The buffer's length when it was last parsed without a reply.
        let mut parsed_len: Option<usize> = None;
        loop {
            let due = parsed_len.is_none_or(|at| {
                line_start > at || self.buf.len().saturating_sub(line_start) > REPARSE_AFTER
            });
            if due {
                if let Some((reply, used)) = parse_reply(&self.buf)? {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                parsed_len = Some(self.buf.len());
            }
            self.buf.reserve(1024);
            let before = self.buf.len();
            let n = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| SmtpError::Timeout)??;
            if n == 0 {
                return Err(SmtpError::Closed);
            }
            line_start = line_start_after(&self.buf, before).max(line_start);
        }
    }
}

/// Where the last line of `buf` begins, looking for line ends from `from` on
/// (0 when none is found there).
fn line_start_after(buf: &[u8], from: usize) -> usize {
    buf.get(from..)
        .and_then(|new| new.iter().rposition(|&b| b == b'\n'))
        .map_or(0, |at| from + at + 1)
}

async fn read_full<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<usize, SmtpError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = tokio::time::timeout(timeout, reader.read(&mut buf[filled..]))
            .await
            .map_err(|_| SmtpError::Timeout)??;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Removes CR, LF and angle brackets' escape routes from a command argument
/// (addresses and URLs are validated before; this is the last line of defence).
fn clean(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() && *c != '<' && *c != '>')
        .collect()
}

/// Streaming dot-stuffing for DATA (RFC 5321 4.5.2): a line starting with
/// `.` gets another `.`; the end is `CRLF.CRLF`.
#[derive(Debug)]
pub(crate) struct DotStuffer {
    /// Whether the next byte starts a line.
    at_line_start: bool,
    /// Whether the last byte written was LF preceded by CR.
    ended_with_crlf: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            ended_with_crlf: true,
        }
    }
}

impl DotStuffer {
    pub(crate) fn stuff(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + input.len() / 64 + 2);
        for &b in input {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
        if let Some(&last) = input.last() {
            self.ended_with_crlf = last == b'\n'
                && (input.len() >= 2 && input[input.len() - 2] == b'\r' || input.len() == 1);
        }
        out
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        if self.ended_with_crlf {
            b".\r\n".to_vec()
        } else {
            b"\r\n.\r\n".to_vec()
        }
    }
}

/// `prefix`, `secret` in base64 and CRLF, in one buffer sized up front and
/// zeroed when dropped (no copy of the secret is left behind).
fn line_of(prefix: &[u8], secret: &[u8]) -> zeroize::Zeroizing<String> {
    let encoded_len = secret.len().div_ceil(3) * 4;
    let mut line = zeroize::Zeroizing::new(String::with_capacity(prefix.len() + encoded_len + 2));
    line.push_str(&String::from_utf8_lossy(prefix));
    base64::engine::general_purpose::STANDARD.encode_string(secret, &mut line);
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_survives_any_split() {
        let input = b".start\r\nmiddle\r\n..two\r\nend.\r\n.";
        let expected = b"..start\r\nmiddle\r\n...two\r\nend.\r\n..\r\n.\r\n".to_vec();
        for cut in 0..=input.len() {
            let mut s = DotStuffer::default();
            let mut out = s.stuff(&input[..cut]);
            out.extend(s.stuff(&input[cut..]));
            out.extend(s.finish());
            assert_eq!(out, expected, "cut {cut}");
        }
        let mut s = DotStuffer::default();
        let mut out = s.stuff(b"a\r\n");
        out.extend(s.finish());
        assert_eq!(out, b"a\r\n.\r\n");
    }

    #[test]
    fn arguments_cannot_inject_commands() {
        assert_eq!(clean("a@b\r\nRCPT TO:<x@y>"), "a@bRCPT TO:x@y");
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod scripted_tests;
