//! Rules as a client sends them, and their checking: every field is
//! checked before anything is stored, and the first bad one is named in
//! the error (`rules.quiet_hours.start`, `rules.vip[2]`, …).
//!
//! Choices made here: `except_vip` without quiet hours (or without `vip`)
//! is accepted and has no effect, so a client can drop quiet hours without
//! touching the rest; duplicate days and patterns are stored once; days
//! are stored in week order.

use super::quiet::{ClockTime, QuietHours, Weekday};
use super::senders::normalize_pattern;
use super::Rules;

/// Most entries in `vip` and in `mute_senders`.
pub const MAX_PATTERNS: usize = 100;

/// Longest time zone name read (the longest IANA name has 32 bytes).
const MAX_ZONE_BYTES: usize = 64;

/// How much of a bad value an error repeats.
const SHOWN_CHARS: usize = 64;

/// Rules as received, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesInput {
    pub quiet_hours: Option<QuietHoursInput>,
    pub except_vip: bool,
    pub vip: Vec<String>,
    pub only_direct: bool,
    pub mute_lists: bool,
    pub mute_senders: Vec<String>,
}

/// Quiet hours as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuietHoursInput {
    /// `HH:MM`
    pub start: String,
    /// `HH:MM`
    pub end: String,
    /// `mon` … `sun` (or full names); empty: every day.
    pub days: Vec<String>,
    /// An IANA zone such as `Europe/Berlin`.
    pub time_zone: String,
}

/// Why rules were refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rules.quiet_hours.time_zone: {0:?} is not an IANA time zone such as Europe/Berlin")]
    UnknownZone(String),
    #[error("rules.quiet_hours.{field}: {value:?} is not a time of day as HH:MM (00:00 to 23:59)")]
    BadTime { field: &'static str, value: String },
    #[error("rules.quiet_hours.days[{index}]: {value:?} is not a day (mon, tue, wed, thu, fri, sat, sun)")]
    UnknownDay { index: usize, value: String },
    #[error("rules.{field}[{index}]: {value:?} is not an address (ann@example.org) or a domain (example.org): {reason}")]
    BadPattern {
        field: &'static str,
        index: usize,
        value: String,
        reason: &'static str,
    },
    #[error("rules.{field}: at most {max} entries")]
    TooMany { field: &'static str, max: usize },
}

impl RulesInput {
    /// The rules to store, or the first thing wrong with them.
    pub fn validate(self) -> Result<Rules, RuleError> {
        Ok(Rules {
            quiet_hours: self
                .quiet_hours
                .map(QuietHoursInput::validate)
                .transpose()?,
            except_vip: self.except_vip,
            vip: patterns("vip", &self.vip)?,
            only_direct: self.only_direct,
            mute_lists: self.mute_lists,
            mute_senders: patterns("mute_senders", &self.mute_senders)?,
        })
    }
}

impl QuietHoursInput {
    fn validate(self) -> Result<QuietHours, RuleError> {
        let time = |field, value: &str| {
            ClockTime::parse(value.trim()).ok_or_else(|| RuleError::BadTime {
                field,
                value: shown(value),
            })
        };
        let start = time("start", &self.start)?;
        let end = time("end", &self.end)?;
        if self.days.len() > 7 {
            return Err(RuleError::TooMany {
                field: "quiet_hours.days",
                max: 7,
            });
        }
        let mut days = Vec::with_capacity(self.days.len());
        for (index, text) in self.days.iter().enumerate() {
            let day = Weekday::parse(text).ok_or_else(|| RuleError::UnknownDay {
                index,
                value: shown(text),
            })?;
            days.push(day);
        }
        days.sort();
        days.dedup();
        Ok(QuietHours {
            start,
            end,
            days,
            time_zone: zone_name(&self.time_zone)?,
        })
    }
}

/// The database's spelling of a zone name.
fn zone_name(text: &str) -> Result<String, RuleError> {
    let text = text.trim();
    let unknown = || RuleError::UnknownZone(shown(text));
    if text.is_empty() || text.len() > MAX_ZONE_BYTES {
        return Err(unknown());
    }
    let zone = jiff::tz::db().get(text).map_err(|_| unknown())?;
    Ok(zone.iana_name().unwrap_or(text).to_string())
}

fn patterns(field: &'static str, list: &[String]) -> Result<Vec<String>, RuleError> {
    if list.len() > MAX_PATTERNS {
        return Err(RuleError::TooMany {
            field,
            max: MAX_PATTERNS,
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let pattern = normalize_pattern(value).map_err(|reason| RuleError::BadPattern {
            field,
            index,
            value: shown(value),
            reason,
        })?;
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    Ok(out)
}

/// The start of a client's value, for an error message.
fn shown(value: &str) -> String {
    value.chars().take(SHOWN_CHARS).collect()
}
