//! Requests that race, as a phone on a flaky link makes them (a retry while
//! the first request still runs), store what one of them would: against a
//! real Dovecot for the logins. Where a test has to wait for the gateway to
//! reach a point, it waits for an answer the gateway gives there, with a
//! bound only so that a broken gateway fails the test instead of hanging it.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::dovecot::Dovecot;
use support::gateway::{account_body, data_dir, test_config, Gateway};
use support::push::{PushReceiver, TestDevice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The distinct values of `field` in answers that must all be 201.
fn distinct_created<'a>(answers: &'a [(u16, Value)], field: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body[field].as_str().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Requests that race (a phone retrying on a flaky link) store what one of
/// them would: one account per login, one device per subscription, and
/// never more devices than allowed. The devices ask for `Sent` as well, so
/// each registration dials Dovecot to check it exists: a wide window for
/// the requests to overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_registrations_store_what_one_would() {
    use futures_util::future::join_all;

    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let receiver = PushReceiver::start().await;
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.push.max_devices_per_account = 3;
    let gateway = Gateway::start_with(config).await;

    let body = account_body(dovecot.host(), dovecot.imap_port(), "alice", "secret");
    let registered = join_all((0..6).map(|_| gateway.post("/v1/accounts", None, &body))).await;
    let ids = distinct_created(&registered, "account_id");
    assert_eq!(ids.len(), 1, "one login, several accounts: {ids:?}");
    let token = registered[0].1["token"].as_str().unwrap();

    // One subscription registered eight times at once: one device.
    let phone = TestDevice::new(&receiver);
    let device = json!({"subscription": phone.subscription_json(), "mailboxes": ["INBOX", "Sent"]});
    let answers = join_all((0..8).map(|_| gateway.post("/v1/devices", Some(token), &device))).await;
    let device_ids = distinct_created(&answers, "device_id");
    assert_eq!(device_ids.len(), 1, "{device_ids:?}");
    let (_, listed) = gateway.get("/v1/devices", Some(token)).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 1, "{listed}");

    // Six new subscriptions at once with room for two more: two stored.
    let phones: Vec<TestDevice> = (0..6).map(|_| TestDevice::new(&receiver)).collect();
    let bodies: Vec<Value> = phones
        .iter()
        .map(|phone| json!({"subscription": phone.subscription_json(), "mailboxes": ["INBOX", "Sent"]}))
        .collect();
    let answers = join_all(
        bodies
            .iter()
            .map(|body| gateway.post("/v1/devices", Some(token), body)),
    )
    .await;
    let stored = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused = answers
        .iter()
        .filter(|(status, body)| (*status, error_code(body)) == (422, "too_many_devices"))
        .count();
    assert_eq!((stored, refused), (2, 4), "{answers:?}");
    let (_, listed) = gateway.get("/v1/devices", Some(token)).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 3, "{listed}");
    gateway.stop().await;
}

/// New accounts registered at once from one client (a script) stop at
/// `api.accounts_per_client`; the login of an account it has is still let
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_at_once_from_one_client_stop_at_its_allowance() {
    use futures_util::future::join_all;

    let dovecot = Dovecot::builder().without_auth_penalty().start();
    let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    for user in &users {
        dovecot.add_user(user, "secret");
    }
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.api.accounts_per_client = 3;
    let gateway = Gateway::start_with(config).await;
    let bodies: Vec<Value> = users
        .iter()
        .map(|user| account_body(dovecot.host(), dovecot.imap_port(), user, "secret"))
        .collect();
    let answers = join_all(
        bodies
            .iter()
            .map(|body| gateway.post("/v1/accounts", None, body)),
    )
    .await;
    let created: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].0 == 201)
        .collect();
    let refused = answers
        .iter()
        .filter(|(status, body)| (*status, error_code(body)) == (429, "too_many_registrations"))
        .count();
    assert_eq!((created.len(), refused), (3, 5), "{answers:?}");
    let (status, body) = gateway
        .post("/v1/accounts", None, &bodies[created[0]])
        .await;
    assert_eq!(status, 201, "{body}");
    gateway.stop().await;
}

/// An HTTP/1.1 request written by hand, so the test decides when each part
/// of its body leaves: its answer comes back through `answers` as (index,
/// status, body).
async fn open_request(
    gateway: &Gateway,
    index: usize,
    head: String,
    first_part: &[u8],
    answers: mpsc::UnboundedSender<(usize, u16, Value)>,
) -> OwnedWriteHalf {
    let address = gateway.url.trim_start_matches("http://");
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = socket.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(first_part).await.unwrap();
    tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // The gateway closes the connection after answering a request whose
        // body it did not read; for the others, the JSON body is complete
        // once it parses.
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if let Some((status, body)) = parse_answer(&answer) {
                let _ = answers.send((index, status, body));
                return;
            }
        }
        let (status, body) = parse_answer(&answer).unwrap_or((0, Value::Null));
        let _ = answers.send((index, status, body));
    });
    write
}

fn parse_answer(bytes: &[u8]) -> Option<(u16, Value)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).ok()?))
}

fn upload_head(gateway: &Gateway, method: &str, path: &str, token: &str, extra: &str) -> String {
    let host = gateway.url.trim_start_matches("http://");
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\n{extra}\r\n"
    )
}

/// Waits for the next answer; `None` when none came within `bound`.
async fn next_answer(
    answers: &mut mpsc::UnboundedReceiver<(usize, u16, Value)>,
    bound: Duration,
) -> Option<(usize, u16, Value)> {
    tokio::time::timeout(bound, answers.recv())
        .await
        .ok()
        .flatten()
}

/// One hand-written request, as `open_request`, with a channel of its own.
async fn open_one(
    gateway: &Gateway,
    method: &str,
    path: &str,
    token: &str,
    extra: &str,
    first_part: &[u8],
) -> (OwnedWriteHalf, mpsc::UnboundedReceiver<(usize, u16, Value)>) {
    let (tx, answers) = mpsc::unbounded_channel();
    let head = upload_head(gateway, method, path, token, extra);
    (
        open_request(gateway, 0, head, first_part, tx).await,
        answers,
    )
}

/// The answer that must come; the bound only turns a hang into a failure.
async fn answer(answers: &mut mpsc::UnboundedReceiver<(usize, u16, Value)>) -> (usize, u16, Value) {
    next_answer(answers, Duration::from_secs(60))
        .await
        .expect("the request is answered")
}

/// A gateway configured by `configure`, with alice registered against a
/// Dovecot of her own: (Dovecot, data directory, its guard, gateway, token).
async fn alice_on(
    configure: impl FnOnce(&mut lemonade::config::Config),
) -> (
    Dovecot,
    std::path::PathBuf,
    tempfile::TempDir,
    Gateway,
    String,
) {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let (tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    configure(&mut config);
    let gateway = Gateway::start_with(config).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    (dovecot, dir, tmp, gateway, token)
}

/// Creates an empty resumable upload of `length` bytes; returns its path.
async fn create_resumable(gateway: &Gateway, token: &str, length: usize) -> String {
    let created = gateway
        .http
        .post(gateway.at("/v1/uploads"))
        .bearer_auth(token)
        .header("upload-length", length)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<Value>().await.unwrap()["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    format!("/v1/uploads/{id}")
}

/// Four uploads at once, each fitting the quota alone, two of them
/// together: two are stored and two refused, although no record exists yet
/// while they stream. And an upload still streaming when its account is
/// deleted leaves neither record nor file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_uploads_share_the_quota_and_die_with_their_account() {
    let (_dovecot, dir, _tmp, gateway, token) = alice_on(|config| {
        config.send.max_upload_bytes = 10_000;
        config.send.upload_quota_bytes = 25_000;
    })
    .await;

    let (tx, mut answers) = mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for index in 0..4 {
        let head = upload_head(
            &gateway,
            "POST",
            "/v1/uploads",
            &token,
            "content-length: 9000\r\n",
        );
        writers.push(open_request(&gateway, index, head, &[1u8; 1_000], tx.clone()).await);
    }
    // Two are refused as soon as their headers are read; the others wait
    // for the rest of their bodies.
    let mut refused = Vec::new();
    while refused.len() < 2 {
        let Some((index, status, body)) = next_answer(&mut answers, Duration::from_secs(10)).await
        else {
            break;
        };
        assert_eq!(
            (status, error_code(&body)),
            (507, "upload_quota_exceeded"),
            "{body}"
        );
        refused.push(index);
    }
    for (index, writer) in writers.iter_mut().enumerate() {
        if !refused.contains(&index) {
            writer.write_all(&[2u8; 8_000]).await.unwrap();
        }
    }
    let mut stored = 0;
    while refused.len() + stored < 4 {
        let (_, status, body) = answer(&mut answers).await;
        match status {
            201 => stored += 1,
            _ => panic!("{status} {body}"),
        }
    }
    assert_eq!(
        (stored, refused.len()),
        (2, 2),
        "four uploads of 9,000 bytes against a quota of 25,000"
    );

    // The stored two are kept; an upload that streams while the account is
    // deleted is not.
    let (mut writer, mut answers) = open_one(
        &gateway,
        "POST",
        "/v1/uploads",
        &token,
        "content-length: 5000\r\n",
        &[3u8; 1_000],
    )
    .await;
    let (status, _) = gateway.delete("/v1/accounts/me", Some(&token)).await;
    assert_eq!(status, 204);
    writer.write_all(&[4u8; 4_000]).await.unwrap();
    let (_, status, _) = answer(&mut answers).await;
    assert_eq!(status, 401);
    gateway.stop().await;

    use lemonade::store::{SendStore, SledStore};
    let store = SledStore::open(&dir.join("db")).unwrap();
    assert_eq!(
        store.uploads().await.unwrap().len(),
        0,
        "an upload record outlived its account"
    );
    let files = std::fs::read_dir(dir.join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "upload files outlived their account");
}

/// While one PATCH appends to a resumable upload, another is refused
/// instead of appending the same bytes again; the first one completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_patch_appends_at_a_time() {
    let (_dovecot, _dir, _tmp, gateway, token) = alice_on(|_| {}).await;
    let path = create_resumable(&gateway, &token, 6_000).await;

    let head = upload_head(
        &gateway,
        "PATCH",
        &path,
        &token,
        "upload-offset: 0\r\ncontent-length: 6000\r\n",
    );
    let (tx, mut answers) = mpsc::unbounded_channel();
    let mut writer = open_request(&gateway, 0, head.clone(), &[5u8; 1_000], tx.clone()).await;
    // A second PATCH at another offset never appends: it is refused as busy
    // once the first holds the upload, and as out of step before that. A
    // first PATCH that arrived while a second one held the upload is
    // refused as busy itself, and is sent again.
    let mut busy = false;
    for _ in 0..400 {
        if let Ok((_, status, body)) = answers.try_recv() {
            assert_eq!(
                (status, error_code(&body)),
                (409, "upload_in_progress"),
                "{body}"
            );
            writer = open_request(&gateway, 0, head.clone(), &[5u8; 1_000], tx.clone()).await;
        }
        let r = gateway
            .http
            .patch(gateway.at(&path))
            .bearer_auth(&token)
            .header("upload-offset", 3)
            .body(vec![6u8; 10])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if (status, error_code(&body)) == (409, "upload_in_progress") {
            busy = true;
            break;
        }
        assert_eq!(
            (status, error_code(&body)),
            (409, "offset_mismatch"),
            "{body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        busy,
        "a second PATCH was never refused while the first streamed"
    );
    writer.write_all(&[5u8; 5_000]).await.unwrap();
    let (_, status, body) = answer(&mut answers).await;
    assert_eq!(
        (status, body["size"].clone()),
        (200, json!(6_000)),
        "{body}"
    );
    let (status, listed) = gateway.get(&path, Some(&token)).await;
    assert_eq!(
        (status, listed["size"].clone()),
        (200, json!(6_000)),
        "{listed}"
    );
    assert!(listed["sha256"].is_string(), "{listed}");
    gateway.stop().await;
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Uploads have no overall time limit (a large file over a phone's uplink
/// takes minutes) but an idle one: an upload that keeps sending outlasts
/// `api.request_timeout_secs`; one that stalls gets 408, and keeps what
/// arrived when it is resumable. Bytes in the file that the record does not
/// count (a request cut off when the gateway stopped) are counted, so the
/// next PATCH appends after them and the file stays what the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_bounded_by_silence_not_by_length() {
    let (_dovecot, dir, _tmp, gateway, token) = alice_on(|config| {
        config.api.request_timeout_secs = 3;
    })
    .await;

    // Eight parts half a second apart: longer than the timeout in all.
    let (mut writer, mut answers) = open_one(
        &gateway,
        "POST",
        "/v1/uploads",
        &token,
        "content-length: 8000\r\n",
        &[7u8; 1_000],
    )
    .await;
    for _ in 1..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        writer.write_all(&[7u8; 1_000]).await.unwrap();
    }
    let (_, status, body) = answer(&mut answers).await;
    assert_eq!(
        (status, body["size"].clone()),
        (201, json!(8_000)),
        "{body}"
    );

    // A resumable upload that stalls after 1,000 bytes keeps them.
    let data: Vec<u8> = (0..6_000u32).map(|i| (i % 251) as u8).collect();
    let path = create_resumable(&gateway, &token, data.len()).await;
    let id = path.rsplit('/').next().unwrap().to_string();
    let (_stalled, mut answers) = open_one(
        &gateway,
        "PATCH",
        &path,
        &token,
        "upload-offset: 0\r\ncontent-length: 6000\r\n",
        &data[..1_000],
    )
    .await;
    let (_, status, body) = answer(&mut answers).await;
    assert_eq!(
        (status, error_code(&body)),
        (408, "upload_stalled"),
        "{body}"
    );
    let offset = |gateway: &Gateway| {
        let request = gateway.http.head(gateway.at(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(offset(&gateway).await, "1000");

    // As a request cut off by a stop would leave it: 500 more bytes in the
    // file than in the record.
    let file = dir.join("uploads").join(&id);
    let mut on_disk = std::fs::read(&file).unwrap();
    on_disk.extend_from_slice(&data[1_000..1_500]);
    std::fs::write(&file, &on_disk).unwrap();
    assert_eq!(offset(&gateway).await, "1500");
    let r = gateway
        .http
        .patch(gateway.at(&path))
        .bearer_auth(&token)
        .header("upload-offset", 1_500)
        .body(data[1_500..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, view) = gateway.get(&path, Some(&token)).await;
    assert_eq!(view["size"], 6_000, "{view}");
    assert_eq!(view["sha256"], sha256_hex(&data), "{view}");

    // A stalled upload that is not resumable leaves no file behind.
    let (_stalled, mut answers) = open_one(
        &gateway,
        "POST",
        "/v1/uploads",
        &token,
        "content-length: 5000\r\n",
        &[8u8; 1_000],
    )
    .await;
    let (_, status, body) = answer(&mut answers).await;
    assert_eq!(
        (status, error_code(&body)),
        (408, "upload_stalled"),
        "{body}"
    );
    gateway.stop().await;
    let files = std::fs::read_dir(dir.join("uploads")).unwrap().count();
    assert_eq!(
        files, 2,
        "the slow upload and the resumable one, nothing else"
    );
}
