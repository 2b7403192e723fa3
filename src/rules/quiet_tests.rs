use proptest::prelude::*;

use super::*;

fn quiet(start: &str, end: &str, days: &[Weekday], zone: &str) -> QuietHours {
    QuietHours {
        start: ClockTime::parse(start).unwrap(),
        end: ClockTime::parse(end).unwrap(),
        days: days.to_vec(),
        time_zone: zone.to_string(),
    }
}

/// Unix ms of an RFC 3339 instant.
fn ms(instant: &str) -> i64 {
    instant.parse::<Timestamp>().unwrap().as_millisecond()
}

/// What `quiet_until` says at `now`, as an RFC 3339 instant.
fn until(hours: &QuietHours, now: &str) -> Option<String> {
    hours
        .quiet_until(ms(now))
        .map(|end| Timestamp::from_millisecond(end).unwrap().to_string())
}

#[test]
fn a_period_across_midnight_ends_the_next_morning() {
    let night = quiet("22:00", "07:00", &[], "UTC");
    let end = Some("2026-01-06T07:00:00Z".to_string());
    assert_eq!(until(&night, "2026-01-05T21:59:59Z"), None);
    assert_eq!(until(&night, "2026-01-05T22:00:00Z"), end);
    assert_eq!(until(&night, "2026-01-05T23:30:00Z"), end);
    assert_eq!(until(&night, "2026-01-06T06:59:59Z"), end);
    assert_eq!(until(&night, "2026-01-06T07:00:00Z"), None);
    assert_eq!(until(&night, "2026-01-06T12:00:00Z"), None);
}

#[test]
fn a_period_within_a_day() {
    let lunch = quiet("12:00", "13:30", &[], "UTC");
    assert_eq!(until(&lunch, "2026-01-05T11:59:00Z"), None);
    assert_eq!(
        until(&lunch, "2026-01-05T12:45:00Z").as_deref(),
        Some("2026-01-05T13:30:00Z")
    );
    assert_eq!(until(&lunch, "2026-01-05T13:30:00Z"), None);
}

#[test]
fn days_name_the_day_a_period_starts_on() {
    // 2026-01-09 is a Friday.
    let friday_night = quiet("22:00", "07:00", &[Weekday::Fri], "UTC");
    let end = Some("2026-01-10T07:00:00Z".to_string());
    assert_eq!(until(&friday_night, "2026-01-09T23:00:00Z"), end);
    assert_eq!(until(&friday_night, "2026-01-10T01:00:00Z"), end);
    // Saturday night and Thursday night are not quiet, nor is Friday
    // morning (the end of Thursday's period).
    assert_eq!(until(&friday_night, "2026-01-10T23:00:00Z"), None);
    assert_eq!(until(&friday_night, "2026-01-08T23:00:00Z"), None);
    assert_eq!(until(&friday_night, "2026-01-09T06:00:00Z"), None);
}

#[test]
fn whole_days_in_a_row_run_on_as_one_period() {
    let weekend = quiet("00:00", "00:00", &[Weekday::Sat, Weekday::Sun], "UTC");
    let monday = Some("2026-01-12T00:00:00Z".to_string());
    assert_eq!(until(&weekend, "2026-01-10T12:00:00Z"), monday);
    assert_eq!(until(&weekend, "2026-01-11T23:00:00Z"), monday);
    assert_eq!(until(&weekend, "2026-01-09T23:59:00Z"), None);
    assert_eq!(until(&weekend, "2026-01-12T00:00:00Z"), None);
    // Quiet all the time is reported a week at a time.
    let always = quiet("08:00", "08:00", &[], "UTC");
    assert_eq!(
        until(&always, "2026-01-05T12:00:00Z").as_deref(),
        Some("2026-01-12T08:00:00Z")
    );
}

#[test]
fn the_zone_decides_the_wall_clock() {
    let night = quiet("22:00", "07:00", &[], "America/New_York");
    assert_eq!(until(&night, "2026-01-06T02:59:00Z"), None);
    assert_eq!(
        until(&night, "2026-01-06T03:00:00Z").as_deref(),
        Some("2026-01-06T12:00:00Z")
    );
}

#[test]
fn the_end_stays_at_local_time_when_clocks_go_forward() {
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST.
    let night = quiet("22:00", "07:00", &[], "Europe/Berlin");
    let end = Some("2026-03-29T05:00:00Z".to_string());
    assert_eq!(until(&night, "2026-03-28T20:59:00Z"), None);
    assert_eq!(until(&night, "2026-03-28T21:00:00Z"), end);
    assert_eq!(until(&night, "2026-03-29T04:59:59Z"), end);
    assert_eq!(until(&night, "2026-03-29T05:00:00Z"), None);
}

#[test]
fn the_end_stays_at_local_time_when_clocks_go_back() {
    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET.
    let night = quiet("22:00", "07:00", &[], "Europe/Berlin");
    let end = Some("2026-10-25T06:00:00Z".to_string());
    assert_eq!(until(&night, "2026-10-24T20:00:00Z"), end);
    assert_eq!(until(&night, "2026-10-25T00:30:00Z"), end);
    assert_eq!(until(&night, "2026-10-25T05:59:59Z"), end);
    assert_eq!(until(&night, "2026-10-25T06:00:00Z"), None);
}

#[test]
fn a_start_skipped_by_the_clocks_is_read_as_before_the_change() {
    // 02:30 does not exist in Berlin on 2026-03-29; it is 02:30 CET, that
    // is 01:30 UTC (03:30 CEST).
    let early = quiet("02:30", "07:00", &[], "Europe/Berlin");
    assert_eq!(until(&early, "2026-03-29T01:15:00Z"), None);
    assert_eq!(
        until(&early, "2026-03-29T01:30:00Z").as_deref(),
        Some("2026-03-29T05:00:00Z")
    );
    // The day before, 02:30 CET as usual.
    assert_eq!(
        until(&early, "2026-03-28T01:30:00Z").as_deref(),
        Some("2026-03-28T06:00:00Z")
    );
}

#[test]
fn a_start_that_happens_twice_is_its_first_occurrence() {
    // 02:30 happens twice in Berlin on 2026-10-25: first at 00:30 UTC.
    let early = quiet("02:30", "07:00", &[], "Europe/Berlin");
    assert_eq!(until(&early, "2026-10-25T00:29:00Z"), None);
    assert_eq!(
        until(&early, "2026-10-25T00:30:00Z").as_deref(),
        Some("2026-10-25T06:00:00Z")
    );
}

#[test]
fn a_zone_the_database_lost_is_taken_as_utc() {
    let night = quiet("22:00", "07:00", &[], "Mars/Olympus_Mons");
    assert_eq!(
        until(&night, "2026-01-05T23:00:00Z").as_deref(),
        Some("2026-01-06T07:00:00Z")
    );
}

#[test]
fn times_and_days_parse_strictly() {
    assert_eq!(ClockTime::parse("07:05").unwrap().to_string(), "07:05");
    assert_eq!(ClockTime::parse("23:59").unwrap().to_string(), "23:59");
    for bad in [
        "24:00",
        "25:00",
        "7:5",
        "7:05",
        "07:60",
        "0705",
        "07:05:00",
        "",
        "+7:05",
        "٠٧:٠٥",
    ] {
        assert!(ClockTime::parse(bad).is_none(), "{bad:?}");
    }
    assert_eq!(Weekday::parse("Mon"), Some(Weekday::Mon));
    assert_eq!(Weekday::parse("sunday"), Some(Weekday::Sun));
    for bad in ["mo", "monda", "mondays", "lun", ""] {
        assert_eq!(Weekday::parse(bad), None, "{bad:?}");
    }
}

const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kolkata",
    "Pacific/Chatham",
];

fn any_quiet_hours() -> impl Strategy<Value = QuietHours> {
    (
        0u16..1440,
        0u16..1440,
        proptest::bits::u8::ANY,
        0..ZONES.len(),
    )
        .prop_map(|(start, end, days, zone)| QuietHours {
            start: ClockTime(start),
            end: ClockTime(end),
            days: Weekday::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| days & (1 << i) != 0)
                .map(|(_, d)| d)
                .collect(),
            time_zone: ZONES[zone].to_string(),
        })
}

const EIGHT_DAYS_MS: i64 = 8 * 24 * 3600 * 1000;

proptest! {
    #[test]
    fn quiet_until_is_later_and_within_eight_days(
        hours in any_quiet_hours(),
        // 1900 to 2200, and any value at all.
        now in prop_oneof![-2_208_988_800_000i64..7_258_118_400_000, any::<i64>()],
    ) {
        if let Some(end) = hours.quiet_until(now) {
            prop_assert!(end > now, "{end} <= {now}");
            prop_assert!(end - now <= EIGHT_DAYS_MS, "{end} - {now} too far");
        }
    }

    #[test]
    fn just_before_an_end_is_still_quiet(
        hours in any_quiet_hours(),
        now in 1_700_000_000_000i64..1_900_000_000_000,
    ) {
        if let Some(end) = hours.quiet_until(now) {
            prop_assert!(hours.quiet_until(end - 1).is_some());
        }
    }
}
