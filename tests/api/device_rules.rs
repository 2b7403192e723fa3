//! A device's notification rules and `clear` over the API: set at
//! registration, listed back, changed by `PATCH /v1/devices/{id}`, and
//! refused with nothing stored when they are not valid.

use serde_json::{json, Value};

use crate::support::api::error_code;
use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, Gateway};
use crate::support::push::{PushReceiver, TestDevice};

/// The account's devices as `GET /v1/devices` lists them.
async fn devices(gateway: &Gateway, token: &str) -> Vec<Value> {
    let (status, body) = gateway.get("/v1/devices", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body["devices"].as_array().unwrap().clone()
}

fn night(time_zone: &str, start: &str) -> Value {
    json!({"start": start, "end": "07:00", "days": ["sat", "Sun"], "time_zone": time_zone})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_rules_are_set_listed_changed_and_checked() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.add_user("bob", "hunter2");
    let receiver = PushReceiver::start().await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (host, port) = (dovecot.host(), dovecot.imap_port());
    let (_, alice) = gateway.register(host, port, "alice", "secret").await;
    let (_, bob) = gateway.register(host, port, "bob", "hunter2").await;

    // Registration takes rules and `clear`, and answers them normalized.
    let phone = TestDevice::new(&receiver);
    let rules = json!({"quiet_hours": night("europe/berlin", "22:00"), "except_vip": true,
        "vip": ["Boss@Corp.Example"], "mute_lists": true});
    let (status, created) = gateway
        .post(
            "/v1/devices",
            Some(&alice),
            &json!({"subscription": phone.subscription_json(), "payload": "count",
                "rules": rules, "clear": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let stored_rules = json!({
        "quiet_hours": {"start": "22:00", "end": "07:00", "days": ["sat", "sun"],
            "time_zone": "Europe/Berlin"},
        "except_vip": true, "vip": ["boss@corp.example"], "only_direct": false,
        "mute_lists": true, "mute_senders": []});
    assert_eq!(
        (&created["rules"], &created["clear"]),
        (&stored_rules, &json!(true))
    );
    let id = created["device_id"].as_str().unwrap().to_string();
    let before = devices(&gateway, &alice).await;
    assert_eq!(before.len(), 1);
    assert_eq!(
        (&before[0]["rules"], &before[0]["clear"]),
        (&stored_rules, &json!(true))
    );

    // Bad rules are refused naming the field, at registration and by
    // PATCH, and nothing is stored.
    let tablet = TestDevice::new(&receiver);
    let bad = [
        (
            json!({"quiet_hours": night("Europe/Atlantis", "22:00")}),
            "rules.quiet_hours.time_zone",
        ),
        (
            json!({"quiet_hours": night("UTC", "25:00")}),
            "rules.quiet_hours.start",
        ),
        (json!({"vip": ["ann@x.org", "ann@"]}), "rules.vip[1]"),
    ];
    for (rules, field) in &bad {
        let (status, body) = gateway
            .post(
                "/v1/devices",
                Some(&alice),
                &json!({"subscription": tablet.subscription_json(), "rules": rules}),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "invalid_rules"),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(field),
            "{message} does not name {field}"
        );
        let (status, body) = gateway
            .patch(
                &format!("/v1/devices/{id}"),
                Some(&alice),
                &json!({"rules": rules}),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "invalid_rules"),
            "{body}"
        );
    }
    assert_eq!(devices(&gateway, &alice).await, before);

    // PATCH replaces the whole rule set and changes what it names; the
    // rest stays. It answers the device as listed.
    let (status, patched) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"rules": {"only_direct": true, "mute_senders": ["@Spam.Example"]},
                "clear": false, "payload": "headers"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["rules"],
        json!({"except_vip": false, "vip": [], "only_direct": true, "mute_lists": false,
            "mute_senders": ["spam.example"]})
    );
    assert_eq!(
        (
            &patched["device_id"],
            &patched["clear"],
            &patched["payload"],
            &patched["mailboxes"]
        ),
        (
            &json!(id),
            &json!(false),
            &json!("headers"),
            &json!(["INBOX"])
        )
    );
    assert_eq!(
        devices(&gateway, &alice).await,
        std::slice::from_ref(&patched)
    );

    // Mailboxes are checked as at registration; `{}` removes every rule.
    let (status, body) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"mailboxes": ["a\r\nb"]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_mailboxes"),
        "{body}"
    );
    let (status, body) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"mailboxes": ["Nowhere"]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "unknown_mailbox"),
        "{body}"
    );
    let (status, body) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"payload": "loud"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_body"), "{body}");
    assert_eq!(
        devices(&gateway, &alice).await,
        std::slice::from_ref(&patched)
    );
    let (status, cleared) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"rules": {}}),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["rules"]["only_direct"], false);
    assert_eq!(cleared["rules"]["mute_senders"], json!([]));
    assert_eq!(
        (&cleared["clear"], &cleared["payload"]),
        (&json!(false), &json!("headers"))
    );

    // Registering the same subscription again without rules or `clear`
    // (as apps do at each start) keeps them; given, they replace them.
    let (status, body) = gateway
        .patch(
            &format!("/v1/devices/{id}"),
            Some(&alice),
            &json!({"rules": {"mute_lists": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let again = json!({"subscription": phone.subscription_json(), "payload": "headers"});
    let (status, body) = gateway.post("/v1/devices", Some(&alice), &again).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            &body["device_id"],
            &body["rules"]["mute_lists"],
            &body["clear"]
        ),
        (&json!(id), &json!(true), &json!(false))
    );
    let mut replaced = again.clone();
    replaced["rules"] = json!({});
    replaced["clear"] = json!(true);
    let (status, body) = gateway.post("/v1/devices", Some(&alice), &replaced).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["rules"]["mute_lists"], &body["clear"]),
        (&json!(false), &json!(true))
    );

    // Without `clear`, the tier decides: yes for preview and headers.
    let (status, body) = gateway
        .post(
            "/v1/devices",
            Some(&alice),
            &json!({"subscription": tablet.subscription_json(), "payload": "wake"}),
        )
        .await;
    assert_eq!((status, &body["clear"]), (201, &json!(false)), "{body}");
    let tablet_id = body["device_id"].as_str().unwrap().to_string();
    let (status, body) = gateway
        .patch(
            &format!("/v1/devices/{tablet_id}"),
            Some(&alice),
            &json!({"payload": "preview"}),
        )
        .await;
    assert_eq!((status, &body["clear"]), (200, &json!(true)), "{body}");

    // Another account's device and an unknown id: the 404 of DELETE.
    for (path, token) in [
        (format!("/v1/devices/{id}"), &bob),
        ("/v1/devices/no-such-device".to_string(), &alice),
    ] {
        let (status, body) = gateway
            .patch(&path, Some(token), &json!({"clear": true}))
            .await;
        assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
        let (status, body) = gateway.delete(&path, Some(token)).await;
        assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    }
    let (status, _) = gateway
        .patch(&format!("/v1/devices/{id}"), None, &json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(devices(&gateway, &bob).await, Vec::<Value>::new());
    gateway.stop().await;
}
