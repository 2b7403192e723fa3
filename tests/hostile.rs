//! The watcher against a hostile IMAP server: the gateway in-process, the
//! scripted server of `support::hostile_imap`, and a real push receiver.
//! Each test asserts the mechanism that keeps one such account from hurting
//! the gateway: what is kept and returned is short, looks that find nothing
//! are spaced out, the largest UID is pushed once, nothing of a deleted
//! account stays, and garbage makes the account back off.

use crate::support;

use std::time::Duration;

use support::gateway::{data_dir, Gateway};
use support::hostile_imap::{HostileImap, Mode, MAX_UID};
use support::push::{PushReceiver, TestDevice};

const WAIT: Duration = Duration::from_secs(30);
/// The most of a server's text the gateway keeps (1 KiB, cut on a
/// character boundary and marked with an ellipsis).
const MAX_TEXT: usize = 1024;

/// Registers `user` on the server (which must let it log in then).
async fn register(gateway: &Gateway, imap: &HostileImap, user: &str) -> (String, String) {
    gateway
        .register(&imap.host(), imap.port(), user, "any password")
        .await
}

/// The watch error `GET /v1/accounts/me` shows.
async fn watch_error(gateway: &Gateway, token: &str) -> String {
    let (status, me) = gateway.get("/v1/accounts/me", Some(token)).await;
    assert_eq!(status, 200);
    let error = me["watch"]["error"].as_str().expect("an error is shown");
    error.to_owned()
}

/// The value of an unlabelled metric.
async fn metric(gateway: &Gateway, name: &str) -> u64 {
    let text = gateway.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_bye_is_stored_and_returned_short() {
    let imap = HostileImap::start(Mode::WellBehaved).await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    gateway.wait_watching(&token, &["INBOX"]).await;

    // Half a MiB: within what a greeting may take, so the text is read
    // whole and cut where it is parsed.
    imap.set_mode(Mode::HugeBye { bytes: 512 << 10 });
    imap.drop_connections();
    // The registration, the first watch, then BYEs: once the fourth
    // connection came, the third one's BYE has been recorded.
    imap.wait_for("two BYE connections", |seen| seen.connections >= 4)
        .await;
    let error = watch_error(&gateway, &token).await;
    assert!(error.len() <= MAX_TEXT, "{} bytes kept", error.len());
    assert!(
        error.starts_with("server closed the connection: aaaa") && error.ends_with('…'),
        "{error:.80}"
    );

    // 30 MiB: more than any greeting may take, refused before it is whole.
    imap.set_mode(Mode::HugeBye { bytes: 30 << 20 });
    let seen = imap.seen().connections;
    imap.wait_for("two more connections", |now| now.connections >= seen + 2)
        .await;
    let error = watch_error(&gateway, &token).await;
    assert!(error.len() <= MAX_TEXT, "{} bytes kept", error.len());
    assert!(error.starts_with("response too large"), "{error:.80}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_churn_keeps_one_list_and_none_after_deletion() {
    let imap = HostileImap::start(Mode::CapabilityChurn { extra: 40 }).await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    // Each watch logs in, is shown a capability list never seen before, and
    // is closed once in IDLE.
    imap.wait_for("eight logins", |seen| seen.logins >= 8).await;

    // The account's capabilities and its mailbox list, no older lists.
    let kept = metric(&gateway, "lemonade_watch_status_lists").await;
    assert!(kept <= 2, "{kept} lists kept for one account");
    let (_, me) = gateway.get("/v1/accounts/me", Some(&token)).await;
    let caps = me["watch"]["capabilities"].as_array().unwrap();
    assert!(caps
        .iter()
        .any(|c| c.as_str().unwrap().starts_with("X-CHURN-")));

    let (status, _) = gateway.delete("/v1/accounts/me", Some(&token)).await;
    assert_eq!(status, 204);
    assert_eq!(metric(&gateway, "lemonade_watch_status_lists").await, 0);
    let text = gateway.metrics_text().await;
    let states: u64 = text
        .lines()
        .filter(|l| l.starts_with("lemonade_accounts{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(states, 0, "{text}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_exists_after_every_idle_does_not_drive_a_loop() {
    // `* 0 EXISTS` as each IDLE starts and every 20 ms while it runs.
    let imap = HostileImap::start(Mode::ZeroExists {
        every: Some(Duration::from_millis(20)),
    })
    .await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    gateway.wait_watching(&token, &["INBOX"]).await;

    let seen = imap
        .wait_for("200 EXISTS sent", |seen| seen.exists_sent >= 200)
        .await;
    // Without spacing, every announcement ends IDLE with a look (one UID
    // FETCH per EXISTS). Spaced out, the watcher stays in IDLE through
    // most of them.
    let idles = seen.count("IDLE");
    assert!(
        seen.checks() * 10 <= seen.exists_sent,
        "{} looks for {} EXISTS",
        seen.checks(),
        seen.exists_sent
    );
    assert!(idles * 10 <= seen.exists_sent, "{idles} IDLEs");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_the_largest_uid_is_pushed_once() {
    let imap = HostileImap::start(Mode::WellBehaved).await;
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "headers")
        .await;
    gateway.wait_watching(&token, &["INBOX"]).await;
    let uid = imap.deliver("eve");
    let push = device.next_push(WAIT).await.payload;
    assert_eq!(push["messages"][0]["uid"], uid);

    // Now the mailbox holds UID 4294967295, and each IDLE says `* 2 EXISTS`.
    imap.set_mode(Mode::MaxUid);
    imap.drop_connections();
    let push = device.next_push(WAIT).await.payload;
    assert_eq!(push["messages"][0]["uid"], MAX_UID);
    let idles = imap.seen().count("IDLE");
    imap.wait_for("three more IDLEs", |seen| seen.count("IDLE") >= idles + 3)
        .await;
    device.expect_no_push(Duration::from_secs(1)).await;
    assert_eq!(device.push_count(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_too_large_backs_the_account_off() {
    // One FETCH answer beyond what the client takes in one response.
    let imap = HostileImap::start(Mode::HugeFetch {
        copies: 1,
        subject_bytes: 33 << 20,
    })
    .await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    // The registration, then the watch and four reconnects, each failing.
    let seen = imap
        .wait_for("four reconnects", |seen| seen.connections >= 6)
        .await;

    // Between two failures the account may be watching again for a
    // moment (which clears the error): look once it backs off.
    let me = loop {
        let (_, me) = gateway.get("/v1/accounts/me", Some(&token)).await;
        if me["watch"]["state"] == "backoff" {
            break me;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = me["watch"]["error"].as_str().expect("an error is shown");
    assert!(error.len() <= MAX_TEXT, "{} bytes kept", error.len());
    assert!(metric(&gateway, "lemonade_reconnects_total").await >= 4);
    // Each reconnect had reached IDLE before the answer came, and yet the
    // delays grow as after any protocol error (200 ms doubling in the test
    // configuration, drawn between half and all of the step): the fourth
    // waits at least 800 ms, where a fresh backoff would wait at most 200.
    let at = &seen.accepted_at;
    let fourth = at[5].duration_since(at[4]);
    assert!(fourth >= Duration::from_millis(750), "{fourth:?}");
    gateway.stop().await;
}

/// Waits until the account shows a watch error starting with `prefix`.
async fn wait_error(gateway: &Gateway, token: &str, prefix: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let error = gateway.get("/v1/accounts/me", Some(token)).await.1["watch"]["error"]
            .as_str()
            .map(str::to_owned);
        match error {
            Some(error) if error.starts_with(prefix) => return error,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("no error starting {prefix:?}: last {error:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Registers an account on a well-behaved server, switches the server to
/// `mode` and waits until the watcher has run `command` against it: the
/// account then shows a short "response too large" error, and the gateway
/// still answers.
async fn flood_fails_the_command(mode: Mode, command: &str) {
    let imap = HostileImap::start(Mode::WellBehaved).await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    gateway.wait_watching(&token, &["INBOX"]).await;

    imap.set_mode(mode);
    imap.drop_connections();
    imap.wait_for(command, |seen| seen.count(command) > 0).await;
    let error = wait_error(&gateway, &token, "response too large").await;
    assert!(error.len() <= MAX_TEXT, "{} bytes kept", error.len());
    let (status, _) = gateway.get("/v1/accounts/me", Some(&token)).await;
    assert_eq!(status, 200);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_summaries_fails_the_command_not_the_gateway() {
    // Forty answers of 1 MiB each for one new message: more than a few new
    // summaries may take, though each answer alone is allowed.
    let mode = Mode::HugeFetch {
        copies: 40,
        subject_bytes: 1 << 20,
    };
    flood_fails_the_command(mode, "UID FETCH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_search_results_fails_the_command_not_the_gateway() {
    // 16 MiB of numbers for a mailbox of a thousand and one messages.
    flood_fails_the_command(Mode::SearchFlood { bytes: 16 << 20 }, "UID SEARCH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_flood_is_answered_with_a_clear_error() {
    let imap = HostileImap::start(Mode::WellBehaved).await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = register(&gateway, &imap, "eve").await;
    gateway.wait_watching(&token, &["INBOX"]).await;

    imap.set_mode(Mode::ListFlood { bytes: 16 << 20 });
    let (status, body) = gateway.get("/v1/mailboxes", Some(&token)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "imap_response_too_large", "{body}");

    // The account cools down: the next request is refused at once, without
    // asking the server (and reading its flood) again.
    let lists = imap.seen().count("LIST");
    let (status, body) = gateway.get("/v1/mailboxes", Some(&token)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "imap_cooling_down", "{body}");
    assert_eq!(imap.seen().count("LIST"), lists);
    gateway.stop().await;
}
