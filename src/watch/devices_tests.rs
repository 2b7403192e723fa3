use super::*;
use crate::mail::{Address, HeaderFacts};

fn device(id: &str, rules: Rules) -> DeviceWatch {
    DeviceWatch {
        id: id.into(),
        payload: PayloadTier::Headers,
        mailboxes: vec!["INBOX".into()],
        rules,
        clear: true,
    }
}

fn message(uid: u32, from: &str, to: &[&str], list: bool) -> MessageSummary {
    MessageSummary {
        uid,
        from: Address {
            name: String::new(),
            email: from.into(),
        },
        subject: format!("m{uid}"),
        facts: HeaderFacts {
            recipients: to.iter().map(|a| a.to_string()).collect(),
            list,
        },
        ..Default::default()
    }
}

fn batch<'a>(messages: &'a [MessageSummary], count: u32, addresses: &'a [String]) -> Batch<'a> {
    Batch {
        mailbox: "INBOX",
        messages,
        count,
        addresses,
        now_ms: 1_000_000,
        ttl_ms: 60_000,
    }
}

fn uids(share: &DeviceMail<'_>) -> Vec<u32> {
    share.messages.iter().map(|m| m.uid).collect()
}

#[test]
fn without_rules_every_device_gets_everything_now() {
    let devices = [device("d1", Rules::default()), {
        let mut other = device("d2", Rules::default());
        other.mailboxes = vec!["Work".into()];
        other
    }];
    let messages = [message(1, "a@x.org", &[], false)];
    let me = ["me@x.org".to_string()];
    let shares = shares(&devices, &batch(&messages, 3, &me));
    assert_eq!(shares.len(), 1, "only the device that watches INBOX");
    assert_eq!(shares[0].device_id, "d1");
    assert_eq!(uids(&shares[0]), [1]);
    assert_eq!(shares[0].count, 3);
    assert_eq!(shares[0].not_before_ms, 0);
    assert_eq!(shares[0].expires_at_ms, 1_060_000);
}

#[test]
fn muted_mail_counts_but_shows_nothing_and_alone_makes_no_push() {
    let rules = Rules {
        only_direct: true,
        mute_lists: true,
        vip: vec!["boss@x.org".into()],
        ..Rules::default()
    };
    let devices = [device("d1", rules)];
    let me = ["me@x.org".to_string()];
    let messages = [
        message(1, "news@lists.x.org", &["me@x.org"], true),
        message(2, "friend@y.org", &["me@x.org"], false),
        message(3, "someone@y.org", &["team@x.org"], false),
        message(4, "boss@x.org", &["me@x.org"], false),
    ];
    let share = &shares(&devices, &batch(&messages, 4, &me))[0];
    assert_eq!(uids(share), [2, 4]);
    assert_eq!(share.count, 4, "muted mail still counts");
    assert!(share.messages.iter().any(|m| m.uid == 4 && m.vip));
    assert!(share.messages.iter().any(|m| m.uid == 2 && !m.vip));
    assert_eq!(share.not_before_ms, 0);

    let muted = [message(5, "news@lists.x.org", &["me@x.org"], true)];
    let share = &shares(&devices, &batch(&muted, 1, &me))[0];
    assert!(share.messages.is_empty());
    assert_eq!(share.count, 1);
    assert_eq!(share.not_before_ms, DORMANT);
    assert_eq!(share.expires_at_ms, 1_060_000);

    // Mail beyond what was summarised cannot be judged: it is worth a push.
    let share = &shares(&devices, &batch(&muted, 30, &me))[0];
    assert_eq!(share.not_before_ms, 0);
}

#[test]
fn rules_ask_for_headers_even_on_tiers_without_them() {
    let mut count = device("d1", Rules::default());
    count.payload = PayloadTier::Count;
    assert_eq!(
        detail_for(std::slice::from_ref(&count)),
        SummaryDetail::UidsOnly
    );
    count.rules.mute_lists = true;
    assert_eq!(detail_for(&[count]), SummaryDetail::Headers);
}
