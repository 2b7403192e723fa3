//! Senders as rules see them: the address patterns of `vip` and
//! `mute_senders` (checked and normalized when a client sets them, matched
//! against a message's From), and the automated senders `mute_lists`
//! silences (`noreply@…`, `MAILER-DAEMON`).
//!
//! A pattern is an address (`ann@example.org`, matching that address
//! only) or a domain (`example.org`, matching addresses at the domain and
//! at its subdomains). Everything is compared in lowercase. The From
//! address comes from the mail server and may be anything; it is read
//! without panicking and without allocating more than its length.

/// Longest pattern, in bytes (the longest address SMTP allows).
pub const MAX_PATTERN_BYTES: usize = 254;

/// Longest local part, in bytes (RFC 5321).
const MAX_LOCAL_BYTES: usize = 64;

/// Longest label of a domain, in bytes.
const MAX_LABEL_BYTES: usize = 63;

/// A From value longer than this is not read as an address at all.
const MAX_FROM_BYTES: usize = 2048;

/// Checks a pattern a client gave and returns its stored form: trimmed,
/// lowercase, a domain without a leading `@`. The error says why not.
pub fn normalize_pattern(input: &str) -> Result<String, &'static str> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("it is empty");
    }
    // Checked before and after lowercasing, which may lengthen a string.
    let too_long = Err("it is longer than 254 bytes");
    if trimmed.len() > MAX_PATTERN_BYTES {
        return too_long;
    }
    let lower = trimmed.to_lowercase();
    if lower.len() > MAX_PATTERN_BYTES {
        return too_long;
    }
    let (local, domain) = match lower.rsplit_once('@') {
        Some(("", domain)) => (None, domain),
        Some((local, domain)) => (Some(local), domain),
        None => (None, lower.as_str()),
    };
    if let Some(local) = local {
        check_local(local)?;
    }
    check_domain(domain)?;
    Ok(match local {
        Some(local) => format!("{local}@{domain}"),
        None => domain.to_string(),
    })
}

fn check_local(local: &str) -> Result<(), &'static str> {
    if local.len() > MAX_LOCAL_BYTES {
        return Err("the part before @ is longer than 64 bytes");
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || "\"(),:;<>@[\\]".contains(c);
    if local.chars().any(bad) {
        return Err("the part before @ has a space, a control character or one of \"(),:;<>@[\\]");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("the domain is missing");
    }
    if !domain.contains('.') {
        return Err("a domain needs a dot (example.org)");
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_BYTES {
            return Err("a part of the domain is empty or longer than 63 bytes");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part of the domain starts or ends with -");
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err("the domain has characters other than letters, digits, - and .");
        }
    }
    Ok(())
}

/// A message's sender, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The part before the last `@` (the whole value when there is none,
    /// as in `MAILER-DAEMON`).
    pub local: String,
    /// The part after the last `@`, without a trailing dot; may be empty.
    pub domain: String,
}

impl Sender {
    /// Reads the From address: a bare address or `Name <address>`. None
    /// for an empty or overlong value.
    pub fn parse(from: &str) -> Option<Sender> {
        if from.len() > MAX_FROM_BYTES {
            return None;
        }
        let address = match from.rfind('<') {
            Some(open) => {
                let inner = &from[open + 1..];
                inner.split('>').next().unwrap_or(inner)
            }
            None => from,
        };
        let address = address.trim();
        if address.is_empty() {
            return None;
        }
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let local = local.trim_matches('"');
        let domain = domain.trim_end_matches('.');
        Some(Sender {
            local: local.to_lowercase(),
            domain: domain.to_lowercase(),
        })
    }

    /// How specifically `pattern` (a stored, normalized one) names this
    /// sender: None when it does not; an address beats any domain, and a
    /// longer domain (a subdomain) beats a shorter one.
    pub fn matched_by(&self, pattern: &str) -> Option<usize> {
        if self.domain.is_empty() {
            return None;
        }
        match pattern.rsplit_once('@') {
            Some((local, domain)) => {
                (local == self.local && domain == self.domain).then_some(usize::MAX)
            }
            None => {
                let inside = self.domain == pattern
                    || self
                        .domain
                        .strip_suffix(pattern)
                        .is_some_and(|rest| rest.ends_with('.'));
                inside.then(|| pattern.split('.').count())
            }
        }
    }

    /// The most specific match among `patterns`.
    pub fn best_match(&self, patterns: &[String]) -> Option<usize> {
        patterns.iter().filter_map(|p| self.matched_by(p)).max()
    }

    /// Whether this is an automated sender nobody answers: a local part
    /// (before any `+tag`, ignoring `-`, `_` and `.`) that starts with
    /// `noreply` or `donotreply`, or is `mailer-daemon`.
    pub fn is_noreply(&self) -> bool {
        let base = self.local.split('+').next().unwrap_or("");
        let squeezed: String = base
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | '.'))
            .collect();
        squeezed.starts_with("noreply")
            || squeezed.starts_with("donotreply")
            || squeezed == "mailerdaemon"
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn stored_patterns_are_accepted_again_unchanged(input in "\\PC{0,80}|[a-zA-Z0-9.@+-]{0,40}") {
            if let Ok(pattern) = normalize_pattern(&input) {
                prop_assert!(pattern.len() <= MAX_PATTERN_BYTES);
                prop_assert_eq!(normalize_pattern(&pattern), Ok(pattern.clone()));
            }
        }

        #[test]
        fn any_from_value_is_read_without_panicking(from in any::<Vec<u8>>()) {
            let from = String::from_utf8_lossy(&from);
            if let Some(sender) = Sender::parse(&from) {
                prop_assert!(sender.local.len() + sender.domain.len() <= 3 * from.len());
                let _ = sender.is_noreply();
                let _ = sender.matched_by("example.org");
            }
        }
    }

    #[test]
    fn patterns_are_normalized_or_refused() {
        assert_eq!(
            normalize_pattern(" Ann@Example.ORG ").unwrap(),
            "ann@example.org"
        );
        assert_eq!(normalize_pattern("@Example.org").unwrap(), "example.org");
        assert_eq!(
            normalize_pattern("lists.example.org").unwrap(),
            "lists.example.org"
        );
        assert_eq!(
            normalize_pattern("ann+tag@bücher.de").unwrap(),
            "ann+tag@bücher.de"
        );
        for bad in [
            "",
            "   ",
            "example",
            "ann@",
            "ann@localhost",
            "ann smith@example.org",
            "<ann@example.org>",
            "ann@exa mple.org",
            "ann@-example.org",
            "ann@example..org",
            "ann@example.org.",
            "a\r\nb@example.org",
        ] {
            assert!(normalize_pattern(bad).is_err(), "{bad:?} was accepted");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert!(normalize_pattern(&long_local).is_err());
        let long = format!("{}.org", "a.".repeat(130));
        assert!(normalize_pattern(&long).is_err());
    }

    #[test]
    fn from_values_are_read_however_they_come() {
        let ann = Sender::parse("Ann Smith <Ann@Example.org>").unwrap();
        assert_eq!(
            (ann.local.as_str(), ann.domain.as_str()),
            ("ann", "example.org")
        );
        let bare = Sender::parse(" bob@x.org. ").unwrap();
        assert_eq!(
            (bare.local.as_str(), bare.domain.as_str()),
            ("bob", "x.org")
        );
        let daemon = Sender::parse("MAILER-DAEMON").unwrap();
        assert_eq!(
            (daemon.local.as_str(), daemon.domain.as_str()),
            ("mailer-daemon", "")
        );
        assert!(Sender::parse("").is_none());
        assert!(Sender::parse("<>").is_none());
        assert!(Sender::parse(&"a".repeat(5000)).is_none());
        for garbage in ["<", ">", "@", "<<@>>", "\"\"@", "ann@<", "é<ü@ö>"] {
            let _ = Sender::parse(garbage);
        }
    }

    #[test]
    fn addresses_beat_domains_and_subdomains_their_parents() {
        let s = Sender::parse("ann@mail.example.org").unwrap();
        assert_eq!(s.matched_by("ann@mail.example.org"), Some(usize::MAX));
        assert_eq!(s.matched_by("ann@example.org"), None);
        assert_eq!(s.matched_by("example.org"), Some(2));
        assert_eq!(s.matched_by("mail.example.org"), Some(3));
        assert_eq!(s.matched_by("ample.org"), None);
        assert_eq!(s.matched_by("org.example"), None);
        let patterns = vec!["example.org".to_string(), "mail.example.org".to_string()];
        assert_eq!(s.best_match(&patterns), Some(3));
        assert_eq!(Sender::parse("daemon").unwrap().matched_by("daemon"), None);
    }

    #[test]
    fn automated_senders_are_recognized() {
        for noreply in [
            "noreply@x.org",
            "No-Reply@x.org",
            "no_reply+abc@x.org",
            "noreply-billing@x.org",
            "DoNotReply@x.org",
            "do-not-reply@x.org",
            "do.not.reply@x.org",
            "MAILER-DAEMON@x.org",
            "MAILER-DAEMON",
        ] {
            assert!(Sender::parse(noreply).unwrap().is_noreply(), "{noreply}");
        }
        for person in ["ann@x.org", "reply@x.org", "noah@x.org", "daemon@x.org"] {
            assert!(!Sender::parse(person).unwrap().is_noreply(), "{person}");
        }
    }
}
