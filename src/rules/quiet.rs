//! Quiet hours: a daily period, on some days of the week, in the device
//! owner's time zone, during which nothing is pushed.
//!
//! Times are wall-clock times of the zone, so a period ending at 07:00
//! ends at 07:00 local time on both sides of a daylight saving change. A
//! period belongs to the day it starts on: `22:00`–`07:00` on Friday runs
//! from Friday 22:00 to Saturday 07:00; `start == end` is a whole day
//! (from `start` to `start` the next day). Periods that touch (whole days
//! in a row) run on as one, reported a week at a time at most.
//!
//! Local times that do not exist or happen twice are read as RFC 5545 and
//! Temporal's "compatible" rule does: a time skipped when clocks go
//! forward is the time it would have been before the change (02:30 on the
//! day Berlin skips 02:00–03:00 is 03:30 summer time), and a time that
//! happens twice is its first occurrence.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most periods that touch are run on as one: the end reported is at most
/// this many days after the period that holds "now" started, so it is
/// always within 8 days of now (a quiet week and a DST hour).
const MAX_CHAINED_DAYS: usize = 6;

/// A device's quiet hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: ClockTime,
    pub end: ClockTime,
    /// Days a period starts on; empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// An IANA zone name, as the time zone database spells it.
    pub time_zone: String,
}

impl QuietHours {
    /// The zone; a name the database no longer knows (it was checked when
    /// it was stored) is taken as UTC rather than dropping the quiet hours.
    fn zone(&self) -> TimeZone {
        jiff::tz::db().get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    /// None when `now_unix_ms` is outside every quiet period; otherwise
    /// when the period (and those touching it) ends, in unix ms.
    pub fn quiet_until(&self, now_unix_ms: i64) -> Option<i64> {
        let tz = self.zone();
        let now = Timestamp::from_millisecond(now_unix_ms).ok()?;
        let today = tz.to_datetime(now).date();
        let yesterday = today.yesterday().ok()?;
        // A period lasts at most a day (and an hour of DST), so the one
        // holding now started today, yesterday or, around a DST change,
        // the day before.
        for day in [yesterday.yesterday().ok()?, yesterday, today] {
            let Some((start, end)) = self.period(&tz, day) else {
                continue;
            };
            if start <= now && now < end {
                return Some(self.run_on(&tz, day, end).as_millisecond());
            }
        }
        None
    }

    /// The period starting on `day`, if `day` has one.
    fn period(&self, tz: &TimeZone, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days.is_empty() && !self.days.contains(&Weekday::of(day)) {
            return None;
        }
        let end_day = if self.end > self.start {
            day
        } else {
            day.tomorrow().ok()?
        };
        Some((at(tz, day, self.start)?, at(tz, end_day, self.end)?))
    }

    /// The end of the period starting on `day` (ending at `end`), carried
    /// over the periods that start as it ends.
    fn run_on(&self, tz: &TimeZone, mut day: Date, mut end: Timestamp) -> Timestamp {
        for _ in 0..MAX_CHAINED_DAYS {
            let Ok(next) = day.tomorrow() else { break };
            day = next;
            match self.period(tz, day) {
                Some((start, next_end)) if start <= end => end = next_end,
                _ => break,
            }
        }
        end
    }
}

/// The instant of `time` on `day` in `tz`, by the compatible rule.
fn at(tz: &TimeZone, day: Date, time: ClockTime) -> Option<Timestamp> {
    let time = Time::new(time.hour() as i8, time.minute() as i8, 0, 0).ok()?;
    tz.to_timestamp(DateTime::from_parts(day, time)).ok()
}

/// A time of day to the minute; `"HH:MM"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(u16);

impl ClockTime {
    /// `HH:MM` with two digits each, 00:00 to 23:59.
    pub fn parse(text: &str) -> Option<ClockTime> {
        let (h, m) = text.split_once(':')?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        ClockTime::new(h.parse().ok()?, m.parse().ok()?)
    }

    pub fn new(hour: u16, minute: u16) -> Option<ClockTime> {
        (hour < 24 && minute < 60).then_some(ClockTime(hour * 60 + minute))
    }

    pub fn hour(self) -> u16 {
        self.0 / 60
    }

    pub fn minute(self) -> u16 {
        self.0 % 60
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl TryFrom<String> for ClockTime {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        ClockTime::parse(&text).ok_or_else(|| format!("{text:?} is not HH:MM"))
    }
}

impl From<ClockTime> for String {
    fn from(time: ClockTime) -> String {
        time.to_string()
    }
}

/// A day of the week; `"mon"` … `"sun"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The three-letter name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// `mon` or `monday`, in any case.
    pub fn parse(text: &str) -> Option<Weekday> {
        let text = text.trim();
        if text.len() > 9 {
            return None;
        }
        let lower = text.to_ascii_lowercase();
        Weekday::ALL.into_iter().find(|day| {
            let short = day.as_str();
            lower == short || (lower.starts_with(short) && FULL_NAMES.contains(&lower.as_str()))
        })
    }

    fn of(date: Date) -> Weekday {
        use jiff::civil::Weekday as J;
        match date.weekday() {
            J::Monday => Weekday::Mon,
            J::Tuesday => Weekday::Tue,
            J::Wednesday => Weekday::Wed,
            J::Thursday => Weekday::Thu,
            J::Friday => Weekday::Fri,
            J::Saturday => Weekday::Sat,
            J::Sunday => Weekday::Sun,
        }
    }
}

const FULL_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

#[cfg(test)]
#[path = "quiet_tests.rs"]
mod tests;
