use super::*;

fn caps(n: usize) -> Vec<String> {
    vec![
        "IMAP4rev1".to_string(),
        "IDLE".to_string(),
        format!("X-CHURN-{n}"),
    ]
}

#[test]
fn a_new_capability_list_at_each_login_keeps_one() {
    let states = WatchStates::default();
    states.set("a", WatchState::Connecting);
    states.set_mailboxes("a", vec!["INBOX".to_string()]);
    for login in 0..1000 {
        states.set_capabilities("a", caps(login));
    }
    // The account's capabilities and its mailboxes, nothing older.
    assert_eq!(states.shared_lists(), 2);
    assert_eq!(
        &*states.get("a").unwrap().capabilities,
        caps(999).as_slice()
    );
}

#[test]
fn accounts_share_a_list_and_a_deleted_account_leaves_none() {
    let states = WatchStates::default();
    for id in ["a", "b"] {
        states.set(id, WatchState::Connecting);
        states.set_capabilities(id, caps(1));
    }
    let (a, b) = (states.get("a").unwrap(), states.get("b").unwrap());
    assert!(Arc::ptr_eq(&a.capabilities, &b.capabilities));
    drop((a, b));
    assert_eq!(states.shared_lists(), 1);
    assert_eq!(states.remove("a"), 1);
    assert_eq!(states.remove("b"), 0);
    assert!(states.is_empty());
}

#[test]
fn lists_of_unknown_accounts_are_not_kept() {
    // A session that logs in after its account was deleted.
    let states = WatchStates::default();
    for login in 0..10 {
        assert_eq!(states.set_capabilities("gone", caps(login)), 0);
    }
}

#[test]
fn shared_lists_are_bounded_and_the_rest_kept_per_account() {
    let states = WatchStates::default();
    for n in 0..MAX_SHARED_LISTS + 10 {
        let id = n.to_string();
        states.set(&id, WatchState::Connecting);
        states.set_capabilities(&id, caps(n));
    }
    assert_eq!(states.shared_lists(), MAX_SHARED_LISTS);
    let last = (MAX_SHARED_LISTS + 9).to_string();
    assert_eq!(
        &*states.get(&last).unwrap().capabilities,
        caps(MAX_SHARED_LISTS + 9).as_slice()
    );
}

#[test]
fn lists_and_entries_are_bounded() {
    let states = WatchStates::default();
    states.set("a", WatchState::Connecting);
    let mut long = vec!["é".repeat(10_000)];
    long.extend((0..10_000).map(|n| format!("X-{n}")));
    states.set_capabilities("a", long);
    let kept = states.get("a").unwrap().capabilities;
    assert_eq!(kept.len(), MAX_LIST);
    assert!(kept.iter().all(|c| c.len() <= MAX_ENTRY));
    assert!(kept[0].starts_with("éé") && kept[0].ends_with('…'));
}

#[test]
fn errors_are_cut_on_a_character_boundary() {
    let states = WatchStates::default();
    states.set("a", WatchState::Backoff);
    let huge = format!("server closed the connection: {}", "ü".repeat(15 << 20));
    states.set_error("a", &huge);
    let kept = states.get("a").unwrap().error.unwrap();
    assert!(kept.len() <= MAX_TEXT, "{}", kept.len());
    assert!(kept.starts_with("server closed the connection: üü"));
    assert!(kept.ends_with('…'));
    assert_eq!(cut_text("short"), "short");
    assert_eq!(cut_text(&"x".repeat(MAX_TEXT)).len(), MAX_TEXT);
}
