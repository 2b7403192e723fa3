//! A real Dovecot per test, on free loopback ports, in a temporary directory.
//!
//! ```ignore
//! let dovecot = Dovecot::builder().imap_capability("IMAP4rev1 IDLE").start();
//! dovecot.add_user("alice", "secret");
//! let uid = dovecot.append("alice", "secret", "INBOX", b"Subject: hi\r\n\r\nbody\r\n");
//! ```
//!
//! The configuration follows the tested one in the project's Dovecot guide:
//! NOTIFY needs `mailbox_list_index`, URLAUTH/BURL need `mail_attribute_dict`,
//! and the master's stderr goes to a file (it keeps it open for its lifetime).
//! Mail belongs to a system user (`lemonade-test`, created when missing)
//! because Dovecot refuses uids below 500. The harness talks to Dovecot with
//! its own tiny blocking IMAP client, independent of the code under test.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::oauth::JwtSigner;
use super::raw_imap::quote;
pub use super::raw_imap::RawImap;
use std::time::Duration;

/// The system user owning test mail.
const MAIL_USER: &str = "lemonade-test";

/// How to start a Dovecot.
#[derive(Debug, Default, Clone)]
pub struct DovecotBuilder {
    relay_port: Option<u16>,
    imap_capability: Option<String>,
    tls: bool,
    no_attribute_dict: bool,
    max_mail_size: Option<u64>,
    no_auth_penalty: bool,
    oauth2: Option<JwtSigner>,
}

impl DovecotBuilder {
    /// Where the submission service relays mail (an SMTP sink of the test).
    pub fn relay_port(mut self, port: u16) -> Self {
        self.relay_port = Some(port);
        self
    }

    /// Replaces the post-login CAPABILITY list (to hide extensions); a
    /// leading `+` adds to the default instead.
    pub fn imap_capability(mut self, caps: &str) -> Self {
        self.imap_capability = Some(caps.to_owned());
        self
    }

    /// Leaves out `mail_attribute_dict`: URLAUTH then does not work (and
    /// BURL fails) although EHLO still advertises `BURL imap`.
    pub fn without_attribute_dict(mut self) -> Self {
        self.no_attribute_dict = true;
        self
    }

    /// The submission service's message size limit (EHLO `SIZE`).
    pub fn max_mail_size(mut self, bytes: u64) -> Self {
        self.max_mail_size = Some(bytes);
        self
    }

    /// Answers refused logins at once and never slows a client down for
    /// them (Dovecot's auth penalty: up to 15 s per login from an address
    /// that failed before), for tests that make many refused logins.
    pub fn without_auth_penalty(mut self) -> Self {
        self.no_auth_penalty = true;
        self
    }

    /// Adds the `oauth2` passdb (XOAUTH2 and OAUTHBEARER on IMAP and
    /// submission) with local validation of ES256 tokens from
    /// [`Dovecot::jwt`], beside the passwd-file users; refusals are
    /// answered at once (as [`Self::without_auth_penalty`], and loopback
    /// is a trusted network).
    pub fn oauth2(self) -> Self {
        self.oauth2_with(JwtSigner::es256_random())
    }

    /// [`Self::oauth2`] with tokens from `signer` (e.g. an HS256 one).
    pub fn oauth2_with(mut self, signer: JwtSigner) -> Self {
        self.oauth2 = Some(signer);
        self.no_auth_penalty = true;
        self
    }

    /// Turns on TLS: STARTTLS on the IMAP port and implicit TLS on
    /// [`Dovecot::imaps_port`], with a certificate for 127.0.0.1 issued by a
    /// fresh CA whose PEM is at [`Dovecot::ca_file`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Writes the configuration, checks it with `doveconf` and starts Dovecot;
    /// returns once the IMAP port greets.
    pub fn start(self) -> Dovecot {
        let (uid, gid) = mail_user();
        let dir = tempfile::Builder::new()
            .prefix("lemonade-dovecot-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_owned();
        // The mail processes run as the mail user and must reach their homes.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["run", "state", "log", "mail"] {
            fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        chown(&root.join("mail"), uid, gid);
        fs::write(root.join("users"), "").expect("users file");
        let imap_port = free_port();
        let imaps_port = if self.tls { free_port() } else { 0 };
        let submission_port = free_port();
        let relay_port = self.relay_port.unwrap_or_else(free_port);
        if self.tls {
            super::certs::make_certificates(&root, "Lemonade Test CA");
        }
        let config = root.join("dovecot.conf");
        fs::write(
            &config,
            render_config(
                &self,
                &root,
                uid,
                gid,
                imap_port,
                imaps_port,
                submission_port,
                relay_port,
            ),
        )
        .expect("write config");
        // Checked up to three times: once in about twenty test runs doveconf
        // failed with several Dovecots starting at once, and passed again.
        let mut refusals = Vec::new();
        for _ in 0..3 {
            let check = Command::new("doveconf")
                .arg("-c")
                .arg(&config)
                .arg("-n")
                .output()
                .expect("run doveconf");
            if check.status.success() {
                break;
            }
            refusals.push(String::from_utf8_lossy(&check.stderr).into_owned());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(
            refusals.len() < 3,
            "doveconf rejected the configuration three times:\n{}",
            refusals.join("\n")
        );
        if !refusals.is_empty() {
            eprintln!("doveconf refused the configuration, then accepted it: {refusals:?}");
        }
        let mut dovecot = Dovecot {
            jwt: self.oauth2.clone(),
            dir,
            config,
            imap_port,
            imaps_port,
            submission_port,
            child: None,
        };
        dovecot.launch();
        dovecot
    }
}

/// A running Dovecot; stopped and its directory removed on drop.
pub struct Dovecot {
    /// Signs tokens the `oauth2` passdb accepts (with [`DovecotBuilder::oauth2`]).
    jwt: Option<JwtSigner>,
    dir: tempfile::TempDir,
    config: PathBuf,
    imap_port: u16,
    imaps_port: u16,
    submission_port: u16,
    child: Option<Child>,
}

impl Dovecot {
    /// A Dovecot with the default configuration.
    pub fn start() -> Dovecot {
        DovecotBuilder::default().start()
    }

    pub fn builder() -> DovecotBuilder {
        DovecotBuilder::default()
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The implicit-TLS port (only with [`DovecotBuilder::tls`]).
    pub fn imaps_port(&self) -> u16 {
        assert!(self.imaps_port != 0, "started without tls()");
        self.imaps_port
    }

    pub fn submission_port(&self) -> u16 {
        self.submission_port
    }

    /// The CA certificate (PEM) that issued the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Signs tokens Dovecot accepts (only with [`DovecotBuilder::oauth2`]).
    pub fn jwt(&self) -> &JwtSigner {
        self.jwt.as_ref().expect("started without oauth2()")
    }

    /// The directory holding config, logs and mail.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Dovecot's log so far (for failure messages).
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("log/dovecot.log")).unwrap_or_default();
        let err = fs::read_to_string(self.dir.path().join("log/stderr.log")).unwrap_or_default();
        format!("{log}{err}")
    }

    /// Adds a user (Dovecot rereads the passwd-file when it changes).
    pub fn add_user(&self, name: &str, password: &str) {
        assert!(!name.contains(':') && !password.contains(':') && !password.contains('\n'));
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("users"))
            .expect("users file");
        writeln!(file, "{name}:{{PLAIN}}{password}:::::").expect("write user");
    }

    /// Stops Dovecot (`doveadm stop`, then kill if it lingers).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Ends every session of `user` (`doveadm kick`), as a server does
    /// that ends sessions when their token expires; returns once done.
    pub fn kick(&self, user: &str) {
        let status = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .args(["kick", user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("doveadm kick");
        // Exit status 68 (EX_NOUSER): no session to end.
        assert!(
            status.success() || status.code() == Some(68),
            "doveadm kick: {status}"
        );
    }

    /// Stops and starts again on the same ports with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Creates a mailbox (the name is sent as given: modified UTF-7 for
    /// non-ASCII names).
    pub fn create_mailbox(&self, user: &str, pass: &str, name: &str) {
        let mut imap = RawImap::login(self.imap_port, user, pass);
        imap.command(&format!("CREATE {}", quote(name)));
        imap.logout();
    }

    /// Appends a message and returns its UID (from APPENDUID).
    pub fn append(&self, user: &str, pass: &str, mailbox: &str, raw: &[u8]) -> u32 {
        let mut imap = RawImap::login(self.imap_port, user, pass);
        let uid = imap.append(mailbox, raw);
        imap.logout();
        uid
    }

    /// Delivers a message the way an MTA does, straight into the user's
    /// Maildir (works while Dovecot is stopped); Dovecot assigns the UID when
    /// it next looks.
    pub fn deliver_to_maildir(&self, user: &str, raw: &[u8]) {
        let (uid, gid) = mail_user();
        let maildir = self.dir.path().join("mail").join(user).join("Maildir");
        for sub in ["", "new", "cur", "tmp"] {
            let path = maildir.join(sub);
            fs::create_dir_all(&path).expect("maildir");
            chown(&path, uid, gid);
        }
        let name = format!(
            "{}.lemonade-test.{}",
            std::process::id(),
            rand::random::<u64>()
        );
        let tmp = maildir.join("tmp").join(&name);
        fs::write(&tmp, raw).expect("write message");
        chown(&tmp, uid, gid);
        fs::rename(&tmp, maildir.join("new").join(&name)).expect("deliver");
    }

    fn launch(&mut self) {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log/stderr.log"))
            .expect("stderr log");
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("clone log"))
            .stderr(stderr)
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("dovecot exited with {status}:\n{}", self.log());
                }
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.imap_port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dovecot did not answer on port {}:\n{}",
            self.imap_port,
            self.log()
        );
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The mail user's uid and gid, creating the system user when missing.
fn mail_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        if lookup_id("-u").is_none() {
            // A parallel test binary may create it at the same time: check again after.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(MAIL_USER)
                .stderr(Stdio::null())
                .status();
        }
        let uid = lookup_id("-u").expect("mail user exists");
        let gid = lookup_id("-g").expect("mail group exists");
        assert!(
            uid >= 500,
            "{MAIL_USER} has uid {uid}; Dovecot needs >= 500"
        );
        (uid, gid)
    })
}

fn lookup_id(flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(MAIL_USER).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

#[allow(clippy::too_many_arguments)]
fn render_config(
    b: &DovecotBuilder,
    root: &Path,
    uid: u32,
    gid: u32,
    imap_port: u16,
    imaps_port: u16,
    submission_port: u16,
    relay_port: u16,
) -> String {
    let dir = root.display();
    let ssl = if b.tls {
        format!("ssl = yes\nssl_cert = <{dir}/server.pem\nssl_key = <{dir}/server.key\n")
    } else {
        "ssl = no\n".to_owned()
    };
    let imaps = if b.tls {
        format!(
            "  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n  }}\n"
        )
    } else {
        "  inet_listener imaps {\n    port = 0\n  }\n".to_owned()
    };
    let capability = b
        .imap_capability
        .as_ref()
        .map(|c| format!("  imap_capability = {c}\n"))
        .unwrap_or_default();
    let attribute_dict = if b.no_attribute_dict {
        ""
    } else {
        "mail_attribute_dict = file:%h/dovecot-attributes\n"
    };
    let max_mail_size = b
        .max_mail_size
        .map(|n| format!("submission_max_mail_size = {n}\n"))
        .unwrap_or_default();
    let auth_penalty = if b.no_auth_penalty {
        "auth_failure_delay = 0\nservice anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
    } else {
        ""
    };
    // The passwd-file users keep PLAIN and LOGIN; tokens go to `oauth2`.
    let (mechanisms, oauth2, passwd_mechanisms) = match &b.oauth2 {
        Some(signer) => (
            " xoauth2 oauthbearer",
            format!(
                "{}login_trusted_networks = 127.0.0.0/8\nauth_verbose = yes\n",
                signer.dovecot_config(root)
            ),
            "  mechanisms = plain login\n",
        ),
        None => ("", String::new(), ""),
    };
    format!(
        "instance_name = lemonade-test
base_dir = {dir}/run
state_dir = {dir}/state
protocols = imap submission
listen = 127.0.0.1
hostname = test.local
log_path = {dir}/log/dovecot.log
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
{oauth2}passdb {{
  driver = passwd-file
{passwd_mechanisms}  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
mail_location = maildir:~/Maildir
{attribute_dict}{max_mail_size}{auth_penalty}mailbox_list_index = yes
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}
imap_urlauth_host = 127.0.0.1
imap_urlauth_port = {imap_port}
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
  mail_max_userip_connections = 1000
{capability}}}
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
submission_relay_trusted = no
submission_relay_ssl = no
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
{imaps}  service_count = 0
  client_limit = 1000
}}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
}}
service imap {{
  process_limit = 1024
}}
service imap-urlauth-login {{
  unix_listener imap-urlauth {{
    mode = 0666
  }}
}}
service imap-urlauth {{
  unix_listener token-login/imap-urlauth {{
    mode = 0666
  }}
}}
service imap-urlauth-worker {{
  unix_listener imap-urlauth-worker {{
    mode = 0600
    user = $default_internal_user
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
    user = $default_internal_user
  }}
}}
"
    )
}
