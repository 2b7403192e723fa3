//! The gateway binary as a process.
//!
//! Crash and resume: the gateway binary is killed with SIGKILL after the
//! Sent copy is stored and before submission succeeded; started again on
//! the same state it finishes the send with exactly one message at the
//! sink and one in Sent. The relay answering MAIL with 451 holds the job
//! between the two steps (a real server's temporary refusal).
//!
//! Its log lines on a pipe: plain text without colour codes, or one JSON
//! object per line. `lemonade keygen`: private key files, never replaced,
//! and the keys `serve` then uses.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::cluster::free_port;
use support::gateway::data_dir;
use support::send::*;

struct Binary {
    child: Child,
    url: String,
    http: reqwest::Client,
}

async fn start(config: &std::path::Path, port: u16, log_path: &std::path::Path) -> Binary {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_lemonade"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("LEMONADE_CONFIG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut binary = Binary {
        child,
        url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    for _ in 0..400 {
        if let Ok(Some(exit)) = binary.child.try_wait() {
            panic!(
                "the gateway binary exited at start ({exit}):\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        if let Ok(r) = binary
            .http
            .get(format!("{}/healthz", binary.url))
            .send()
            .await
        {
            if r.status().is_success() {
                return binary;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the gateway binary did not answer /healthz within 20 s:\n{}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    );
}

impl Binary {
    async fn get(&self, path: &str, token: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_sent_copy_and_submission_resumes_once() {
    let (sink, dovecot) = mail_servers(None);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&bytes(50_000, 9), "<c@test.local>"),
    );
    let (dir, data) = data_dir();
    let port = free_port();
    let config = dir.path().join("lemonade.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nlog = \"lemonade=debug\"\n[upstream]\nallow_plaintext = true\nallow_private_hosts = true\nconnect_timeout_secs = 10\n[send]\nwait_secs = 1\n",
            data.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let mut gateway = start(&config, port, &log).await;

    let server = |p: u16| json!({"host": "127.0.0.1", "port": p, "security": "plain", "username": USER, "password": PASS});
    let r: Value = gateway
        .http
        .post(format!("{}/v1/accounts", gateway.url))
        .json(&json!({"email": "alice@test.local", "imap": server(dovecot.imap_port()), "smtp": server(dovecot.submission_port())}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["token"].as_str().unwrap().to_owned();

    sink.tempfail_mail(true);
    let answer: Value = gateway
        .http
        .post(format!("{}/v1/send", gateway.url))
        .bearer_auth(&token)
        .header("idempotency-key", "crash-1")
        .json(
            &json!({"to": ["bob@test.local"], "subject": "survives", "text": "x",
                      "attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "2"}}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["send_id"].as_str().expect("send id").to_owned();

    // Wait until the Sent copy is recorded and a submission was refused.
    let mut last = Value::Null;
    for _ in 0..600 {
        last = gateway.get(&format!("/v1/send/{id}"), &token).await;
        if last["status"] == "stored" && last["attempts"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "stored", "{last}");
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    gateway.child.kill().unwrap(); // SIGKILL
    gateway.child.wait().unwrap();
    assert!(sink.messages().is_empty());

    sink.tempfail_mail(false);
    let mut gateway = start(&config, port, &log).await;
    for _ in 0..1200 {
        last = gateway.get(&format!("/v1/send/{id}"), &token).await;
        if last["status"] == "done" || last["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last["status"],
        "done",
        "{last}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    // A repeat of the request after the restart is the same send.
    let again: Value = gateway
        .http
        .post(format!("{}/v1/send", gateway.url))
        .bearer_auth(&token)
        .header("idempotency-key", "crash-1")
        .json(&json!({"to": ["bob@test.local"], "subject": "survives", "text": "x"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["send_id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1);
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
}

/// `lemonade serve` on a loopback port of its choosing with `env` only,
/// its log on a pipe, read until it says it has started.
struct Served {
    child: Child,
    log: BufReader<ChildStderr>,
    lines: Vec<String>,
    listen: String,
}

impl Served {
    fn start(data: &Path, env: &[(&str, &str)]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lemonade"))
            .arg("serve")
            .env_clear()
            .env("LEMONADE_LISTEN", "127.0.0.1:0")
            .env("LEMONADE_DATA_DIR", data)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut lines = Vec::new();
        let listen = loop {
            let mut line = String::new();
            assert!(
                log.read_line(&mut line).unwrap() > 0,
                "exited before starting: {lines:?}"
            );
            let line = line.trim_end().to_string();
            let listen = line
                .contains("gateway started")
                .then(|| listen_address(&line));
            lines.push(line);
            if let Some(listen) = listen {
                break listen;
            }
        };
        Served {
            child,
            log,
            lines,
            listen,
        }
    }

    /// SIGTERM; every log line once it has exited, which it must do cleanly.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        for line in self.log.lines() {
            self.lines.push(line.unwrap());
        }
        assert!(self.child.wait().unwrap().success(), "{:?}", self.lines);
        self.lines
    }
}

/// The `listen` field of the start line, in either log format.
fn listen_address(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(json) => json["fields"]["listen"].as_str().unwrap().to_string(),
        Err(_) => line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("listen="))
            .unwrap()
            .to_string(),
    }
}

#[test]
fn logs_on_a_pipe_have_no_colour_codes_and_json_is_one_object_per_line() {
    let (_dir, data) = data_dir();
    let text = Served::start(&data, &[("LEMONADE_LOG", "info")]).stop();
    assert!(text.iter().any(|l| l.contains("shutting down")), "{text:?}");
    for line in &text {
        assert!(!line.contains('\x1b'), "colour code in {line:?}");
        assert!(line.contains(" INFO ") || line.contains(" WARN "), "{line}");
    }

    let json = Served::start(&data, &[("LEMONADE_LOG_FORMAT", "json")]);
    assert!(json.listen.starts_with("127.0.0.1:"), "{}", json.listen);
    let json = json.stop();
    let messages: Vec<String> = json
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(value["timestamp"].is_string(), "{line}");
            assert!(value["level"].is_string(), "{line}");
            // A single node names no node.
            assert!(value.get("node").is_none(), "{line}");
            value["fields"]["message"].as_str().unwrap().to_string()
        })
        .collect();
    // From the signal task, spawned: its events are formatted the same way.
    assert!(
        messages.iter().any(|m| m == "shutting down"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "gateway stopped"),
        "{messages:?}"
    );
}

fn keygen(dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lemonade"))
        .arg("keygen")
        .arg(dir)
        .env_clear()
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// The value keygen printed after `label: `.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {label} in {stdout}"))
}

/// GET `path` of the API at `listen`; the JSON body of a 200.
fn get_json(listen: &str, path: &str) -> Value {
    let mut stream = std::net::TcpStream::connect(listen).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    serde_json::from_str(body).unwrap()
}

#[test]
fn keygen_writes_private_keys_once_and_serve_uses_them() {
    let (_dir, data) = data_dir();
    let (ok, stdout, stderr) = keygen(&data);
    assert!(ok, "{stderr}");
    let mode = |name: &str| {
        let path = data.join(name);
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(mode("vapid.pk8"), 0o600);
    let master = lemonade::store::Sealer::load(&data.join("master.key")).unwrap();
    let vapid = lemonade::notify::VapidKey::load(&data.join("vapid.pk8")).unwrap();
    assert_eq!(
        printed(&stdout, "master key fingerprint"),
        master.fingerprint()
    );
    assert_eq!(
        printed(&stdout, "VAPID key fingerprint"),
        vapid.fingerprint()
    );
    let public_key = printed(&stdout, "VAPID public key");
    assert_eq!(public_key, vapid.public_key_b64url());
    let files = || ["master.key", "vapid.pk8"].map(|name| std::fs::read(data.join(name)).unwrap());
    let written = files();

    let (ok, _, stderr) = keygen(&data);
    assert!(!ok);
    assert!(
        stderr.contains("master.key") && stderr.contains("exists"),
        "{stderr}"
    );
    assert_eq!(files(), written);

    let served = Served::start(&data, &[]);
    let answer = get_json(&served.listen, "/v1/push/vapid");
    served.stop();
    assert_eq!(answer["public_key"], public_key);
    assert_eq!(files(), written);
}

#[test]
fn sigterm_stops_the_gateway_even_when_its_log_pipe_is_gone() {
    let (_dir, data) = data_dir();
    let served = Served::start(&data, &[("LEMONADE_LOG_FORMAT", "json")]);
    let Served { mut child, log, .. } = served;
    // Whoever read the log has gone: writing "shutting down" now fails.
    drop(log);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // A generous bound only turns a hang into a failure.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().unwrap()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(status) => assert!(status.success(), "{status}"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the gateway kept running after SIGTERM");
        }
    }
}
