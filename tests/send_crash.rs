//! Crash and resume: the gateway binary is killed with SIGKILL after the
//! Sent copy is stored and before submission succeeded; started again on
//! the same state it finishes the send with exactly one message at the
//! sink and one in Sent. The relay answering MAIL with 451 holds the job
//! between the two steps (a real server's temporary refusal).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::gateway::data_dir;
use support::send::*;

struct Binary {
    child: Child,
    url: String,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(config: &std::path::Path, port: u16, log: &std::path::Path) -> Binary {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
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
    let binary = Binary {
        child,
        url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    for _ in 0..400 {
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
    panic!("gateway binary did not come up");
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
