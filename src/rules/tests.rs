use serde_json::json;

use super::*;

fn facts(from: &str, direct: bool, list: bool) -> MessageFacts<'_> {
    MessageFacts { from, direct, list }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const NOTIFY: Verdict = Verdict::Notify { vip: false };
const VIP: Verdict = Verdict::Notify { vip: true };

#[test]
fn no_rules_notify_about_everything() {
    let rules = Rules::default();
    assert!(rules.is_empty());
    assert!(!rules.needs_recipients());
    for f in [
        facts("ann@x.org", false, true),
        facts("noreply@x.org", true, false),
        facts("", false, false),
    ] {
        assert_eq!(rules.verdict(&f), NOTIFY);
    }
    assert_eq!(rules.quiet_until(0), None);
}

#[test]
fn muted_senders_are_muted_by_address_or_domain() {
    let rules = Rules {
        mute_senders: strings(&["spam.example", "ann@x.org"]),
        ..Rules::default()
    };
    assert_eq!(
        rules.verdict(&facts("Ann <ANN@x.org>", true, false)),
        Verdict::Mute
    );
    assert_eq!(
        rules.verdict(&facts("deals@spam.example", true, false)),
        Verdict::Mute
    );
    assert_eq!(
        rules.verdict(&facts("a@news.spam.example", true, false)),
        Verdict::Mute
    );
    assert_eq!(rules.verdict(&facts("bob@x.org", true, false)), NOTIFY);
    assert_eq!(rules.verdict(&facts("garbage <<", true, false)), NOTIFY);
}

#[test]
fn lists_and_automated_senders_are_muted_with_mute_lists() {
    let rules = Rules {
        mute_lists: true,
        ..Rules::default()
    };
    assert!(rules.needs_recipients());
    assert_eq!(
        rules.verdict(&facts("ann@x.org", true, true)),
        Verdict::Mute
    );
    assert_eq!(
        rules.verdict(&facts("no-reply@x.org", true, false)),
        Verdict::Mute
    );
    assert_eq!(
        rules.verdict(&facts("MAILER-DAEMON", true, false)),
        Verdict::Mute
    );
    assert_eq!(rules.verdict(&facts("ann@x.org", false, false)), NOTIFY);
}

#[test]
fn only_direct_mutes_mail_not_addressed_to_the_account() {
    let rules = Rules {
        only_direct: true,
        ..Rules::default()
    };
    assert!(rules.needs_recipients());
    assert_eq!(
        rules.verdict(&facts("ann@x.org", false, false)),
        Verdict::Mute
    );
    assert_eq!(rules.verdict(&facts("ann@x.org", true, true)), NOTIFY);
}

#[test]
fn vip_senders_are_marked_and_pass_list_and_direct_rules() {
    let rules = Rules {
        vip: strings(&["boss@corp.example", "family.example"]),
        only_direct: true,
        mute_lists: true,
        ..Rules::default()
    };
    assert_eq!(
        rules.verdict(&facts("Boss <boss@corp.example>", false, true)),
        VIP
    );
    assert_eq!(
        rules.verdict(&facts("mum@family.example", false, false)),
        VIP
    );
    assert_eq!(
        rules.verdict(&facts("noreply@family.example", true, false)),
        VIP
    );
    assert_eq!(
        rules.verdict(&facts("other@corp.example", true, false)),
        NOTIFY
    );
    assert_eq!(
        rules.verdict(&facts("other@corp.example", false, false)),
        Verdict::Mute
    );
}

#[test]
fn the_more_specific_of_vip_and_mute_senders_wins() {
    let rules = Rules {
        vip: strings(&["boss@corp.example", "news.example", "tie.example"]),
        mute_senders: strings(&["corp.example", "alerts.news.example", "tie.example"]),
        ..Rules::default()
    };
    assert_eq!(rules.verdict(&facts("boss@corp.example", true, false)), VIP);
    assert_eq!(
        rules.verdict(&facts("intern@corp.example", true, false)),
        Verdict::Mute
    );
    assert_eq!(rules.verdict(&facts("ed@news.example", true, false)), VIP);
    assert_eq!(
        rules.verdict(&facts("bot@alerts.news.example", true, false)),
        Verdict::Mute
    );
    assert_eq!(
        rules.verdict(&facts("someone@tie.example", true, false)),
        Verdict::Mute
    );
}

#[test]
fn only_vip_verdicts_break_quiet_hours_and_only_with_except_vip() {
    let mut rules = Rules {
        vip: strings(&["boss@corp.example"]),
        ..Rules::default()
    };
    assert!(!rules.breaks_quiet(VIP));
    rules.except_vip = true;
    assert!(rules.breaks_quiet(VIP));
    assert!(!rules.breaks_quiet(NOTIFY));
    assert!(!rules.breaks_quiet(Verdict::Mute));
}

fn night_input() -> QuietHoursInput {
    QuietHoursInput {
        start: "22:00".into(),
        end: "07:00".into(),
        days: strings(&["Fri", "mon", "friday"]),
        time_zone: "europe/berlin".into(),
    }
}

#[test]
fn valid_input_is_normalized_and_round_trips_through_json() {
    let rules = RulesInput {
        quiet_hours: Some(night_input()),
        except_vip: true,
        vip: strings(&["Boss@Corp.Example", "@family.example", "boss@corp.example"]),
        only_direct: true,
        mute_lists: false,
        mute_senders: strings(&[" spam.example "]),
    }
    .validate()
    .unwrap();
    let stored = serde_json::to_value(&rules).unwrap();
    assert_eq!(
        stored,
        json!({
            "quiet_hours": {"start": "22:00", "end": "07:00", "days": ["mon", "fri"],
                "time_zone": "Europe/Berlin"},
            "except_vip": true,
            "vip": ["boss@corp.example", "family.example"],
            "only_direct": true,
            "mute_senders": ["spam.example"],
        })
    );
    let back: Rules = serde_json::from_value(stored).unwrap();
    assert_eq!(back, rules);
    assert_eq!(serde_json::to_value(Rules::default()).unwrap(), json!({}));
    assert_eq!(
        serde_json::from_value::<Rules>(json!({})).unwrap(),
        Rules::default()
    );
    assert!(
        serde_json::from_value::<Rules>(json!({"quiet_hours": {"start": "25:00",
        "end": "07:00", "time_zone": "UTC"}}))
        .is_err()
    );
}

#[test]
fn except_vip_alone_is_accepted() {
    let rules = RulesInput {
        except_vip: true,
        ..RulesInput::default()
    };
    assert!(rules.validate().unwrap().except_vip);
}

/// The error `input` gets, as the client reads it.
fn refusal(change: impl FnOnce(&mut RulesInput)) -> String {
    let mut input = RulesInput {
        quiet_hours: Some(night_input()),
        ..RulesInput::default()
    };
    change(&mut input);
    input.validate().unwrap_err().to_string()
}

fn hours(input: &mut RulesInput) -> &mut QuietHoursInput {
    input.quiet_hours.as_mut().unwrap()
}

#[test]
fn invalid_input_is_refused_naming_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            refusal(|i| hours(i).time_zone = "Europe/Atlantis".into()),
            "rules.quiet_hours.time_zone",
        ),
        (
            refusal(|i| hours(i).time_zone = "+02:00".into()),
            "rules.quiet_hours.time_zone",
        ),
        (
            refusal(|i| hours(i).time_zone = "x".repeat(10_000)),
            "rules.quiet_hours.time_zone",
        ),
        (
            refusal(|i| hours(i).start = "25:00".into()),
            "rules.quiet_hours.start",
        ),
        (
            refusal(|i| hours(i).end = "7:5".into()),
            "rules.quiet_hours.end",
        ),
        (
            refusal(|i| hours(i).days.push("someday".into())),
            "rules.quiet_hours.days[3]",
        ),
        (
            refusal(|i| hours(i).days = strings(&["mon"; 8])),
            "rules.quiet_hours.days",
        ),
        (
            refusal(|i| i.vip = strings(&["ann@x.org", "ann@"])),
            "rules.vip[1]",
        ),
        (
            refusal(|i| i.mute_senders = strings(&["not an address"])),
            "rules.mute_senders[0]",
        ),
        (
            refusal(|i| i.vip = vec!["a@x.org".into(); MAX_PATTERNS + 1]),
            "rules.vip",
        ),
        (
            refusal(|i| i.mute_senders = vec![format!("{}.org", "a".repeat(300))]),
            "rules.mute_senders[0]",
        ),
    ];
    for (message, field) in cases {
        assert!(
            message.starts_with(field),
            "{message:?} does not name {field}"
        );
        assert!(message.len() < 300, "{message:?} repeats too much");
    }
}
