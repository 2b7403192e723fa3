//! Gateway nodes (processes of the real binary) on one PostgreSQL and one
//! Dovecot: accounts spread over them; a node killed, frozen past its
//! lease, cut off from the database; sends and uploads moving between
//! nodes; refused logins counted across nodes; keys checked at start.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support;
use crate::support::cluster::{Cluster, Node};
use crate::support::dovecot::Dovecot;
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::scenario::message;

pub(crate) const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One mailbox of the test: its user, token and device.
struct Mailbox {
    user: String,
    token: String,
    device: TestDevice,
}

/// Registers `count` users of `dovecot`, each through node `i % nodes`,
/// each with a device (headers tier) registered through the next node, and
/// waits until all are watched. Each INBOX holds an old message first.
async fn mailboxes(
    dovecot: &Dovecot,
    receiver: &PushReceiver,
    nodes: &[&Node],
    count: usize,
) -> Vec<Mailbox> {
    let mut all = Vec::new();
    for i in 0..count {
        dovecot.add_user(&format!("user{i}"), "secret");
    }
    for i in 0..count {
        let user = format!("user{i}");
        dovecot.append(
            &user,
            "secret",
            "INBOX",
            &message("old@example.org", "old mail", "old"),
        );
        let node = nodes[i % nodes.len()].api();
        let (_, token) = node
            .register(dovecot.host(), dovecot.imap_port(), &user, "secret")
            .await;
        let device = TestDevice::new(receiver);
        let other = nodes[(i + 1) % nodes.len()].api();
        other
            .add_device(&token, device.subscription_json(), &["INBOX"], "headers")
            .await;
        all.push(Mailbox {
            user,
            token,
            device,
        });
    }
    for mailbox in &all {
        nodes[0]
            .api()
            .wait_watching(&mailbox.token, &["INBOX"])
            .await;
    }
    all
}

/// Waits for a push carrying `subject`; returns every subject pushed to
/// the device meanwhile.
pub(crate) async fn wait_subject(device: &TestDevice, subject: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let push = device.next_push(WAIT).await;
        let subjects: Vec<String> = push.payload["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["subject"].as_str().map(String::from))
            .collect();
        let found = subjects.iter().any(|s| s == subject);
        seen.extend(subjects);
        if found {
            return seen;
        }
    }
}

fn deliver(dovecot: &Dovecot, mailbox: &Mailbox, subject: &str) {
    let raw = message("sender@example.org", subject, subject);
    dovecot.append(&mailbox.user, "secret", "INBOX", &raw);
}

/// Waits until `node` has logged `message` `count` times.
async fn wait_log(node: &Node, message: &str, count: usize) {
    for _ in 0..1200 {
        if node.log_count(message) >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{} did not log {message:?} {count} times:\n{}",
        node.id,
        node.log()
    );
}

/// The node watching the account, as any node's API tells.
async fn owner_of(node: &Node, token: &str) -> Option<String> {
    let (_, me) = node.api().get("/v1/accounts/me", Some(token)).await;
    me["watch"]["node"].as_str().map(String::from)
}

/// Waits until the account is watched by a node other than `old`; returns it.
async fn wait_owner_other_than(node: &Node, token: &str, old: &str) -> String {
    for _ in 0..1200 {
        let (_, me) = node.api().get("/v1/accounts/me", Some(token)).await;
        let owner = me["watch"]["node"].as_str().unwrap_or_default();
        if !owner.is_empty() && owner != old && me["watch"]["state"] == "watching" {
            return owner.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the account stayed with {old}");
}

/// PATCHes `data` at `offset` to an upload through `node`; returns the answer.
async fn patch(node: &Node, token: &str, id: &str, offset: usize, data: &[u8]) -> Value {
    let r = node
        .api()
        .http
        .patch(node.api().at(&format!("/v1/uploads/{id}")))
        .bearer_auth(token)
        .header("upload-offset", offset)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_and_a_send_move_to_another_node_and_the_message_goes_out_once() {
    use support::send::{bytes, mail_servers, mailbox, register, wait_final};
    let (sink, dovecot) = mail_servers(None);
    let cluster = Cluster::new().await;
    let env = [
        ("LEMONADE_CLUSTER_SEND_TAKEOVER_SECS", "1"),
        ("LEMONADE_SEND_WAIT_SECS", "1"),
    ];
    let mut a = cluster.start_with("n1", &cluster.db_url, &env).await;
    let b = cluster.start_with("n2", &cluster.db_url, &env).await;
    let token = register(a.api(), &dovecot).await;

    // A resumable upload: begun through one node, finished through the other.
    let file = bytes(200_000, 3);
    let r = a
        .api()
        .http
        .post(a.api().at("/v1/uploads"))
        .bearer_auth(&token)
        .header("content-type", "application/pdf")
        .header("upload-length", file.len())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let upload: Value = r.json().await.unwrap();
    let upload_id = upload["upload_id"].as_str().unwrap().to_owned();
    let half = file.len() / 2;
    patch(&a, &token, &upload_id, 0, &file[..half]).await;
    let done = patch(&b, &token, &upload_id, half, &file[half..]).await;
    assert_eq!(done["size"], file.len());

    // The send starts on the first node, which stores the Sent copy and is
    // refused at MAIL (451), then dies before submitting.
    sink.tempfail_mail(true);
    let request = json!({"to": ["bob@test.local"], "subject": "moves", "text": "x",
                         "attachments": [{"upload_id": upload_id, "filename": "doc.pdf"}]});
    let (status, answer) = support::send::post_send(a.api(), &token, "move-1", &request).await;
    assert!(status == 200 || status == 202, "{status} {answer}");
    let id = answer["send_id"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for _ in 0..600 {
        last = b.api().get(&format!("/v1/send/{id}"), Some(&token)).await.1;
        if last["status"] == "stored" && last["attempts"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "stored", "{last}");
    a.kill();
    assert!(sink.messages().is_empty());
    sink.tempfail_mail(false);

    let last = wait_final(b.api(), &token, &id).await;
    assert_eq!(last["status"], "done", "{last}\n{}", b.log());
    assert_eq!(
        sink.wait_for(1, std::time::Duration::from_secs(10)).len(),
        1
    );
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    // The same request again, through the surviving node: the same send.
    let (_, again) = support::send::post_send(b.api(), &token, "move-1", &request).await;
    assert_eq!(again["send_id"], id.as_str());
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_accounts_move_and_every_mail_is_pushed() {
    let dovecot = Dovecot::start();
    let receiver = PushReceiver::start().await;
    let cluster = Cluster::new().await;
    let mut nodes = [
        cluster.start("n1").await,
        cluster.start("n2").await,
        cluster.start("n3").await,
    ];
    let refs: Vec<&Node> = nodes.iter().collect();
    let boxes = mailboxes(&dovecot, &receiver, &refs, 6).await;
    // Spread: more than one node watches.
    let mut owners = Vec::new();
    for mailbox in &boxes {
        owners.push(owner_of(&nodes[0], &mailbox.token).await.unwrap());
    }
    owners.sort();
    owners.dedup();
    assert!(owners.len() > 1, "all accounts on {owners:?}");

    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "before");
    }
    for mailbox in &boxes {
        wait_subject(&mailbox.device, "before").await;
    }

    // The first account's node dies; mail keeps arriving meanwhile.
    let victim = owner_of(&nodes[0], &boxes[0].token).await.unwrap();
    let at = nodes.iter().position(|n| n.id == victim).unwrap();
    nodes[at].kill();
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "during");
    }
    let survivor = nodes.iter().find(|n| n.id != victim).unwrap();
    let new_owner = wait_owner_other_than(survivor, &boxes[0].token, &victim).await;
    assert_ne!(new_owner, victim);
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "after");
    }
    for mailbox in &boxes {
        let mut seen = wait_subject(&mailbox.device, "during").await;
        seen.extend(wait_subject(&mailbox.device, "after").await);
        assert!(
            !seen.iter().any(|s| s == "old mail"),
            "old mail pushed: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_pushes_nothing_for_accounts_it_lost_and_a_restart_loses_nothing() {
    let dovecot = Dovecot::start();
    let receiver = PushReceiver::start().await;
    let cluster = Cluster::new().await;
    let mut nodes = [cluster.start("n1").await, cluster.start("n2").await];
    let refs: Vec<&Node> = nodes.iter().collect();
    let boxes = mailboxes(&dovecot, &receiver, &refs, 4).await;
    let mailbox = &boxes[0];
    let owner = owner_of(&nodes[0], &mailbox.token).await.unwrap();
    let stale = nodes.iter().position(|n| n.id == owner).unwrap();
    let other = 1 - stale;

    // Frozen past its lease: the other node takes the account.
    nodes[stale].pause();
    wait_owner_other_than(&nodes[other], &mailbox.token, &owner).await;
    deliver(&dovecot, mailbox, "while frozen");
    wait_subject(&mailbox.device, "while frozen").await;

    // Thawed, it finds it lost its lease and the account (the IMAP server
    // told its old connection of the new mail too): nothing more is pushed.
    nodes[stale].resume();
    wait_log(&nodes[stale], "holding the node lease", 2).await;
    let lost = "the node lease could not be renewed in time; stopping all watchers";
    assert_eq!(nodes[stale].log_count(lost), 1);
    // (The account may move back to it now: it is where placement wants it.)
    nodes[other]
        .api()
        .wait_watching(&mailbox.token, &["INBOX"])
        .await;
    deliver(&dovecot, mailbox, "thawed");
    wait_subject(&mailbox.device, "thawed").await;
    let pushed = mailbox.device.push_count();
    assert_eq!(pushed, 2, "a push repeated after the thaw");

    // The whole cluster restarts; mail that arrives meanwhile is pushed.
    for node in nodes.iter_mut() {
        node.terminate().await;
    }
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "while down");
    }
    for node in nodes.iter_mut() {
        node.restart().await;
    }
    for mailbox in &boxes {
        let seen = wait_subject(&mailbox.device, "while down").await;
        assert!(
            !seen.iter().any(|s| s == "old mail" || s == "thawed"),
            "{seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_and_racing_registrations_are_checked_across_nodes() {
    let dovecot = Dovecot::builder().without_auth_penalty().start();
    dovecot.add_user("carol", "right");
    dovecot.add_user("dave", "secret");
    let cluster = Cluster::new().await;
    let env = [("LEMONADE_API_LOGIN_FAILURES_ALLOWED", "2")];
    let nodes = [
        cluster.start_with("n1", &cluster.db_url, &env).await,
        cluster.start_with("n2", &cluster.db_url, &env).await,
    ];
    let body =
        support::gateway::account_body(dovecot.host(), dovecot.imap_port(), "carol", "wrong");
    // One refusal on each node: two in all, the most allowed.
    for node in &nodes {
        let (status, answer) = node.api().post("/v1/accounts", None, &body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("imap_auth_failed"))
        );
    }
    // Neither node tries a third, not even with the right password.
    let right =
        support::gateway::account_body(dovecot.host(), dovecot.imap_port(), "carol", "right");
    for node in &nodes {
        let (status, answer) = node.api().post("/v1/accounts", None, &right).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (429, Some("too_many_failed_logins"))
        );
    }

    // One phone's subscription registered through both nodes at once: one device.
    let receiver = PushReceiver::start().await;
    let (_, token) = nodes[0]
        .api()
        .register(dovecot.host(), dovecot.imap_port(), "dave", "secret")
        .await;
    let device = TestDevice::new(&receiver);
    let body = json!({"subscription": device.subscription_json(), "mailboxes": ["INBOX"], "payload": "count"});
    let (first, second) = tokio::join!(
        nodes[0].api().post("/v1/devices", Some(&token), &body),
        nodes[1].api().post("/v1/devices", Some(&token), &body)
    );
    assert_eq!((first.0, second.0), (201, 201), "{first:?} {second:?}");
    assert_eq!(first.1["device_id"], second.1["device_id"]);
    let (_, listed) = nodes[1].api().get("/v1/devices", Some(&token)).await;
    assert_eq!(
        listed["devices"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// When `message` first appears in `node`'s log after `since`.
fn logged_at(node: &Node, message: &str, since: OffsetDateTime) -> Option<OffsetDateTime> {
    node.log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .filter_map(|line| {
            line["timestamp"]
                .as_str()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
        })
        .find(|at| *at > since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_stops_before_its_accounts_move_and_rejoins() {
    let dovecot = Dovecot::start();
    let receiver = PushReceiver::start().await;
    let server = support::postgres::server().await;
    let url = server.fresh_database().await;
    let proxy = support::tcp_proxy::CuttableProxy::start(server.addr()).await;
    let proxied = url.replace(
        &format!(":{}/", server.port()),
        &format!(":{}/", proxy.port()),
    );
    assert_ne!(proxied, url);
    let cluster = Cluster::on(url);
    let n1 = cluster.start("n1").await;
    let mut n2 = cluster.start_with("n2", &proxied, &[]).await;
    let boxes = mailboxes(&dovecot, &receiver, &[&n1, &n2], 6).await;
    let mut on_n2 = None;
    for mailbox in &boxes {
        if owner_of(&n1, &mailbox.token).await.as_deref() == Some("n2") {
            on_n2 = Some(mailbox);
        }
    }
    let mailbox = on_n2.expect("no account on n2");

    // The link to the database goes silent: n2 stops watching before its
    // lease can run out, and only then does n1 take its accounts.
    let cut_at = OffsetDateTime::now_utc();
    proxy.cut();
    let new_owner = wait_owner_other_than(&n1, &mailbox.token, "n2").await;
    assert_eq!(new_owner, "n1");
    let lost = "the node lease could not be renewed in time; stopping all watchers";
    wait_log(&n2, lost, 1).await;
    let stopped = logged_at(&n2, lost, cut_at).unwrap();
    let claimed = logged_at(&n1, "claimed accounts", cut_at).unwrap();
    assert!(
        stopped < claimed,
        "n2 stopped at {stopped}, n1 claimed at {claimed}"
    );
    assert_eq!(n2.readiness().await, 503);
    deliver(&dovecot, mailbox, "cut off");
    wait_subject(&mailbox.device, "cut off").await;

    // The link comes back: n2 rejoins, and mail is still pushed once.
    proxy.restore();
    wait_log(&n2, "holding the node lease", 2).await;
    n2.wait_ready().await;
    let pushed = mailbox.device.push_count();
    deliver(&dovecot, mailbox, "rejoined");
    wait_subject(&mailbox.device, "rejoined").await;
    assert_eq!(mailbox.device.push_count(), pushed + 1);
}

/// Runs `lemonade serve` for node `id` on `db_url` with `data_dir` until it
/// exits; returns its status and log.
fn serve_until_exit(
    db_url: &str,
    data_dir: &std::path::Path,
) -> (std::process::ExitStatus, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lemonade"))
        .arg("serve")
        .env_clear()
        .env("LEMONADE_LISTEN", "127.0.0.1:0")
        .env("LEMONADE_DATA_DIR", data_dir)
        .env("LEMONADE_STORE_BACKEND", "postgres")
        .env("LEMONADE_STORE_POSTGRES_URL", db_url)
        .env("LEMONADE_CLUSTER_NODE_ID", "stray")
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_cluster_s_keys_refuses_to_start() {
    let cluster = Cluster::new().await;
    let _first = cluster.start("n1").await;
    let dir = tempfile::tempdir().unwrap();

    // No keys: it never makes its own.
    let (status, log) = serve_until_exit(&cluster.db_url, dir.path());
    assert!(!status.success());
    assert!(log.contains("master.key"), "{log}");
    assert!(!dir.path().join("master.key").exists());

    // Keys of another cluster: refused by their fingerprints.
    let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_lemonade"))
        .arg("keygen")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let (status, log) = serve_until_exit(&cluster.db_url, dir.path());
    assert!(!status.success());
    assert!(log.contains("differs from the one the cluster"), "{log}");
}
