//! Running one command on the connection: its tag, its literals
//! (`LITERAL+`, `LITERAL-` or synchronizing), and reading its responses to
//! the tagged completion. A command issued while IDLE runs ends it in the
//! same write (DONE in front), and a command can carry IDLE behind it: the
//! watcher's usual wake-up is then one write and one read. With pipelining
//! off (a server known to mishandle it) each goes out on its own.

use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use super::budget::SMALL_BUDGET;
use super::client::{Completion, Handler, ImapClient};
use super::command::{Command, Part, SecretPart};
use super::error::ImapError;
use super::parser::{Code, Response, Status};

impl ImapClient {
    /// Runs a command and maps NO/BAD to errors named after `command`.
    pub(crate) async fn run_ok(
        &mut self,
        command: &'static str,
        cmd: Command,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        let done = self.run(cmd, handler).await?;
        ok_or_error(command, done)
    }

    /// [`Self::run_ok`], with IDLE sent right behind the command in the same
    /// write; on success IDLE is running (as after `idle_start`). Any error
    /// breaks the connection: the IDLE behind a failed command is in doubt.
    pub(crate) async fn run_ok_then_idle(
        &mut self,
        command: &'static str,
        cmd: Command,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        if !self.capabilities().has("IDLE") {
            return Err(ImapError::Unsupported("IDLE"));
        }
        if !self.pipelining {
            let done = self.run_ok(command, cmd, handler).await?;
            self.idle_start().await?;
            return Ok(done);
        }
        let done = self.run_with(cmd, true, handler).await;
        let result = done.and_then(|done| ok_or_error(command, done));
        if result.is_err() {
            self.broken = true;
            self.idle_tag = None;
        }
        result
    }

    /// Sends `cmd` and reads until its tagged completion, within the
    /// timeout. When IDLE is running, DONE goes out in front of it.
    pub(crate) async fn run(
        &mut self,
        cmd: Command,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        self.run_with(cmd, false, handler).await
    }

    async fn run_with(
        &mut self,
        cmd: Command,
        then_idle: bool,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        if !self.pipelining {
            self.idle_done().await?;
        }
        let pipelined = then_idle || self.idle_tag.is_some();
        let timeout = self.timeout;
        self.in_command = true;
        self.begin_budget(cmd.budget.unwrap_or(SMALL_BUDGET));
        let result = tokio::time::timeout(timeout, self.run_inner(cmd, then_idle, handler))
            .await
            .unwrap_or(Err(ImapError::Timeout));
        self.end_budget();
        self.in_command = false;
        if let Err(e) = &result {
            self.break_on(e);
        }
        if pipelined && suggests_pipelining_trouble(&result) {
            self.pipelining_failed = true;
        }
        result
    }

    async fn run_inner(
        &mut self,
        cmd: Command,
        then_idle: bool,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        self.tag = self.tag.wrapping_add(1);
        let tag = format!("L{}", self.tag);
        let literal_plus = self.caps.has("LITERAL+");
        let literal_minus = self.caps.has("LITERAL-");
        // Commands carry passwords (LOGIN, AUTHENTICATE PLAIN): every buffer
        // that held one is zeroed when dropped, and `out` is sized so that
        // it never moves (a move would leave a copy behind).
        let room = cmd.parts.iter().map(Part::len).sum::<usize>() + tag.len() + 64;
        let mut out = Zeroizing::new(Vec::with_capacity(room));
        // A command issued during IDLE ends it in the same write: DONE, then
        // the command pipelined behind it (one round trip instead of two).
        let mut ending_idle = self.idle_tag.take();
        if ending_idle.is_some() {
            out.extend_from_slice(b"DONE\r\n");
        }
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        for part in cmd.parts {
            let wait_then = match part.into_secret() {
                SecretPart::Text(t) => {
                    out.extend_from_slice(&t);
                    continue;
                }
                SecretPart::Literal(l) if literal_plus || (literal_minus && l.len() <= 4096) => {
                    out.extend_from_slice(format!("{{{}+}}\r\n", l.len()).as_bytes());
                    out.extend_from_slice(&l);
                    continue;
                }
                SecretPart::Literal(l) => {
                    out.extend_from_slice(format!("{{{}}}\r\n", l.len()).as_bytes());
                    l
                }
                SecretPart::Continuation(data) => {
                    out.extend_from_slice(b"\r\n");
                    data
                }
            };
            self.write(&out).await?;
            out.clear();
            if let Some(idle) = ending_idle.take() {
                self.finish_idle(&idle).await?;
            }
            if let Some(done) = self.wait_continuation(&tag, handler).await? {
                return Ok(done);
            }
            out.extend_from_slice(&wait_then);
        }
        out.extend_from_slice(b"\r\n");
        let idle_tag = then_idle.then(|| self.next_tag());
        if let Some(idle) = &idle_tag {
            out.extend_from_slice(idle.as_bytes());
            out.extend_from_slice(b" IDLE\r\n");
        }
        self.write(&out).await?;
        drop(out);
        if let Some(idle) = ending_idle {
            self.finish_idle(&idle).await?;
        }
        let done = self.read_until_tagged(&tag, handler).await?;
        if let Some(idle) = idle_tag {
            if let Some(refused) = self.wait_continuation(&idle, &mut Some).await? {
                return Err(ImapError::protocol(format!(
                    "IDLE refused: {}",
                    refused.text
                )));
            }
            self.idle_tag = Some(idle);
        }
        Ok(done)
    }

    /// Reads to the completion of the IDLE that a pipelined DONE ended,
    /// queueing what arrives on the way. Anything but OK leaves the command
    /// behind it in doubt, so it is a protocol error (the connection breaks).
    async fn finish_idle(&mut self, idle_tag: &str) -> Result<(), ImapError> {
        let done = self.read_until_tagged(idle_tag, &mut Some).await?;
        match done.status {
            Status::Ok => Ok(()),
            _ => Err(ImapError::protocol(format!("DONE refused: {}", done.text))),
        }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads until `+`; a tagged completion instead means the command ended.
    pub(crate) async fn wait_continuation(
        &mut self,
        tag: &str,
        handler: Handler<'_>,
    ) -> Result<Option<Completion>, ImapError> {
        loop {
            match self.read_response().await? {
                Response::Continuation(_) => return Ok(None),
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => return Ok(Some(Completion { status, code, text })),
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

    /// Reads responses until the tagged completion of `tag`.
    pub(crate) async fn read_until_tagged(
        &mut self,
        tag: &str,
        handler: Handler<'_>,
    ) -> Result<Completion, ImapError> {
        loop {
            match self.read_response().await? {
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => return Ok(Completion { status, code, text }),
                Response::Tagged { tag: t, .. } => {
                    return Err(ImapError::protocol(format!("unexpected tag {t}")))
                }
                Response::Continuation(_) => {
                    return Err(ImapError::protocol("unexpected continuation"))
                }
                Response::Untagged(u) => match handler(u) {
                    Some(rest) => self.queue_event(rest),
                    None => self.collect_last()?,
                },
            }
        }
    }
}

/// Whether the result of a pipelined exchange is what a server that reads
/// only the first command of a write, or takes the command for part of
/// IDLE, would produce: a BAD, a response out of step, or no answer.
fn suggests_pipelining_trouble(result: &Result<Completion, ImapError>) -> bool {
    match result {
        Ok(done) => done.status == Status::Bad,
        Err(e) => matches!(e, ImapError::Protocol(_) | ImapError::Timeout),
    }
}

/// A completion as the command's result: NO and BAD become errors named
/// after `command`.
fn ok_or_error(command: &'static str, done: Completion) -> Result<Completion, ImapError> {
    match done.status {
        Status::Ok => Ok(done),
        Status::No if done.code == Some(Code::Unavailable) => {
            Err(ImapError::Unavailable(done.text))
        }
        Status::No => Err(ImapError::No {
            command,
            text: done.text,
        }),
        _ => Err(ImapError::Bad {
            command,
            text: done.text,
        }),
    }
}
