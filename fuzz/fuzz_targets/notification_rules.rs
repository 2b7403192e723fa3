//! A device's rules against what clients and servers send: rules made of
//! any text are kept or refused without panicking; the summary of any
//! header block keeps its recipients bounded; the verdict on any sender
//! never panics and follows the rules' plain cases; the end of quiet hours
//! is after now and within eight days.
//!
//! Input: one byte of flags, then lines: quiet hours' start, end, days
//! (comma-separated) and zone, a VIP pattern, a muted pattern, then the
//! message's header block (the rest).
#![no_main]

use lemonade::fuzzing::{
    header_summary, MessageFacts, QuietHoursInput, RulesInput, Verdict, MAX_RECIPIENTS,
};
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

const DAY_MS: i64 = 86_400_000;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.splitn(7, '\n');
    let mut line = || lines.next().unwrap_or_default().to_string();
    let (start, end, days, zone, vip, muted) = (line(), line(), line(), line(), line(), line());
    let header = line();

    let summary = bounded(header.len(), 64, "header summary", || {
        header_summary(header.as_bytes())
    });
    let from = match &summary {
        Some(summary) => {
            assert!(summary.facts.recipients.len() <= MAX_RECIPIENTS);
            summary.from.email.clone()
        }
        None => header.clone(),
    };
    let quiet = flags & 4 != 0;
    let input = RulesInput {
        quiet_hours: quiet.then(|| QuietHoursInput {
            start,
            end,
            days: days
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
            time_zone: zone,
        }),
        except_vip: flags & 8 != 0,
        vip: vec![vip],
        only_direct: flags & 16 != 0,
        mute_lists: flags & 32 != 0,
        mute_senders: if flags & 64 != 0 {
            vec![muted]
        } else {
            Vec::new()
        },
    };
    let Ok(rules) = input.validate() else {
        return;
    };
    let facts = MessageFacts {
        from: &from,
        direct: flags & 1 != 0,
        list: flags & 2 != 0,
    };
    let verdict = bounded(from.len(), 16, "verdict", || rules.verdict(&facts));
    let plain = !rules.only_direct && !rules.mute_lists && rules.mute_senders.is_empty();
    if plain {
        assert!(matches!(verdict, Verdict::Notify { .. }), "{verdict:?}");
    }
    let now = 1_700_000_000_000 + i64::from(flags) * 3_600_000 + header.len() as i64 * 60_000;
    if let Some(end) = rules.quiet_until(now) {
        assert!(end > now && end <= now + 8 * DAY_MS, "{now} → {end}");
    }
});
