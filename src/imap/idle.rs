//! Waiting for news: NOTIFY (RFC 5465), IDLE (RFC 2177), NOOP and LOGOUT.
//!
//! `idle_next` is the future a watcher parks on for up to ~29 minutes; it
//! holds no read buffer while nothing arrives and is cancel-safe, so it can
//! sit in a `tokio::select!` with a refresh timer and a shutdown signal.

use super::client::ImapClient;
use super::command::Command;
use super::error::ImapError;
use super::parser::{Response, Status};
use super::IdleEvent;

impl ImapClient {
    /// Sets what the server reports without being asked (RFC 5465):
    /// new and expunged messages in the selected mailbox (`selected`, with
    /// the new UID) and in each of `others` (as STATUS responses, which
    /// arrive as [`IdleEvent::Status`]). Nothing asked → `NOTIFY NONE`.
    pub async fn notify_set(&mut self, selected: bool, others: &[String]) -> Result<(), ImapError> {
        if !self.capabilities().has("NOTIFY") {
            return Err(ImapError::Unsupported("NOTIFY"));
        }
        let cmd = if !selected && others.is_empty() {
            Command::new("NOTIFY NONE")
        } else {
            let mut cmd = Command::new("NOTIFY SET");
            if selected {
                // Flag changes too: the watcher tells devices of mail read elsewhere.
                cmd = cmd.raw("(SELECTED (MessageNew (UID) MessageExpunge FlagChange))");
            }
            if !others.is_empty() {
                cmd = cmd.raw("(MAILBOXES (");
                for name in others {
                    cmd = cmd.mailbox(name, self.enabled.utf8)?;
                }
                cmd = cmd.join(") (MessageNew MessageExpunge))");
            }
            cmd
        };
        self.run_ok("NOTIFY", cmd, &mut Some).await?;
        Ok(())
    }

    /// Starts IDLE and waits for the server's `+`. Events that arrive before
    /// it are queued for [`ImapClient::idle_next`].
    pub async fn idle_start(&mut self) -> Result<(), ImapError> {
        if !self.capabilities().has("IDLE") {
            return Err(ImapError::Unsupported("IDLE"));
        }
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        if self.idle_tag.is_some() {
            return Err(ImapError::Idling);
        }
        let tag = self.next_tag();
        let line = format!("{tag} IDLE\r\n");
        let timeout = self.timeout;
        let started = tokio::time::timeout(timeout, async {
            self.write(line.as_bytes()).await?;
            self.wait_continuation(&tag, &mut Some).await
        })
        .await
        .unwrap_or(Err(ImapError::Timeout));
        match started {
            Ok(None) => {
                self.idle_tag = Some(tag);
                Ok(())
            }
            Ok(Some(done)) => Err(match done.status {
                Status::No => ImapError::No {
                    command: "IDLE",
                    text: done.text,
                },
                _ => ImapError::Bad {
                    command: "IDLE",
                    text: done.text,
                },
            }),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// With `false`, sends DONE, commands and IDLE each on their own from now
    /// on, waiting for every answer, for a server that mishandles
    /// pipelining; with `true` (the default), pipelines them again.
    pub fn set_pipelining(&mut self, on: bool) {
        self.pipelining = on;
        if on {
            self.pipelining_failed = false;
        }
    }

    /// Whether DONE, commands and IDLE are pipelined.
    pub fn pipelines(&self) -> bool {
        self.pipelining
    }

    /// Whether an exchange that pipelined DONE or IDLE with a command failed
    /// as a server that mishandles pipelining would make it fail.
    pub fn pipelining_failed(&self) -> bool {
        self.pipelining_failed
    }

    /// Whether IDLE is running (started, or sent behind a command).
    pub fn is_idling(&self) -> bool {
        self.idle_tag.is_some()
    }

    /// The next thing the server reports during IDLE (queued events first).
    /// Cancel-safe: a partly received response stays buffered in the client.
    /// An error (connection closed, BYE then close, garbage) ends the connection.
    pub async fn idle_next(&mut self) -> Result<IdleEvent, ImapError> {
        if let Some(ev) = self.pop_event() {
            return Ok(ev);
        }
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        loop {
            let response = match self.read_response().await {
                Ok(r) => r,
                Err(e) => return Err(self.fail(e)),
            };
            match response {
                Response::Untagged(u) => {
                    return Ok(self.event_from(u).unwrap_or(IdleEvent::Other));
                }
                // Some servers repeat `+` as a keepalive.
                Response::Continuation(_) => continue,
                Response::Tagged { tag, text, .. } if Some(&tag) == self.idle_tag.as_ref() => {
                    self.idle_tag = None;
                    return Err(ImapError::protocol(format!("server ended IDLE: {text}")));
                }
                Response::Tagged { tag, .. } => {
                    return Err(self.fail(ImapError::protocol(format!("unexpected tag {tag}"))));
                }
            }
        }
    }

    /// Ends IDLE (DONE) and reads to its completion; untagged responses seen
    /// on the way are queued. Does nothing when IDLE is not running.
    pub async fn idle_done(&mut self) -> Result<(), ImapError> {
        let Some(tag) = self.idle_tag.take() else {
            return Ok(());
        };
        if self.is_broken() {
            return Err(ImapError::Unusable);
        }
        let timeout = self.timeout;
        let done = tokio::time::timeout(timeout, async {
            self.write(b"DONE\r\n").await?;
            self.read_until_tagged(&tag, &mut Some).await
        })
        .await
        .unwrap_or(Err(ImapError::Timeout));
        match done {
            Ok(done) if done.status == Status::Ok => Ok(()),
            Ok(done) => Err(ImapError::Bad {
                command: "IDLE",
                text: done.text,
            }),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// NOOP: lets the server report changes; they land in the event queue.
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        self.run_ok("NOOP", Command::new("NOOP"), &mut Some).await?;
        Ok(())
    }

    /// Says goodbye (ending IDLE first) and closes; best effort, bounded by a
    /// few seconds, errors ignored.
    pub async fn logout(mut self) {
        let limit = self.timeout.min(super::client::LOGOUT_TIMEOUT);
        let _ = tokio::time::timeout(limit, async {
            if self.is_broken() {
                return;
            }
            if let Some(tag) = self.idle_tag.take() {
                if self.write(b"DONE\r\n").await.is_err()
                    || self.read_until_tagged(&tag, &mut Some).await.is_err()
                {
                    return;
                }
            }
            let _ = self.run(Command::new("LOGOUT"), &mut Some).await;
        })
        .await;
        let _ = tokio::time::timeout(limit, self.shutdown()).await;
    }
}
