//! Where a device's pushes go, by kind: a Web Push endpoint (an https URL),
//! an APNs device token, or an FCM registration token. Every kind is stored
//! as the device's endpoint string, so the store's rules (one device per
//! endpoint and account, the device limit) hold for all of them:
//!
//! ```text
//!  https://push.example/…                 Web Push
//!  apns:production:com.example.mail:9f8e… APNs: environment, topic, token
//!  fcm:dA1b…                              FCM: registration token
//! ```

/// Longest APNs device token taken (hex digits); Apple's are 64 today.
pub const MAX_APNS_TOKEN: usize = 200;
/// Longest FCM registration token taken.
pub const MAX_FCM_TOKEN: usize = 4096;

/// Apple's two push environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsEnvironment {
    Production,
    Sandbox,
}

impl ApnsEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            ApnsEnvironment::Production => "production",
            ApnsEnvironment::Sandbox => "sandbox",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "production" => Some(ApnsEnvironment::Production),
            "sandbox" => Some(ApnsEnvironment::Sandbox),
            _ => None,
        }
    }
}

/// A device's push destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    WebPush(&'a str),
    Apns {
        environment: ApnsEnvironment,
        topic: &'a str,
        token: &'a str,
    },
    Fcm {
        token: &'a str,
    },
}

impl<'a> Target<'a> {
    /// The target a stored endpoint names; anything not native is Web Push.
    pub fn of(endpoint: &'a str) -> Target<'a> {
        if let Some(rest) = endpoint.strip_prefix("apns:") {
            let mut parts = rest.splitn(3, ':');
            if let (Some(env), Some(topic), Some(token)) =
                (parts.next(), parts.next(), parts.next())
            {
                if let Some(environment) = ApnsEnvironment::parse(env) {
                    return Target::Apns {
                        environment,
                        topic,
                        token,
                    };
                }
            }
        }
        if let Some(token) = endpoint.strip_prefix("fcm:") {
            return Target::Fcm { token };
        }
        Target::WebPush(endpoint)
    }

    /// The word the API shows for the device's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::WebPush(_) => "webpush",
            Target::Apns { .. } => "apns",
            Target::Fcm { .. } => "fcm",
        }
    }

    /// The push service, for per-service limits.
    pub fn service(&self) -> Option<String> {
        match self {
            Target::WebPush(_) => None,
            Target::Apns { environment, .. } => Some(format!("apns:{}", environment.as_str())),
            Target::Fcm { .. } => Some("fcm".into()),
        }
    }
}

/// The endpoint string of an APNs device, if its parts are valid: a token
/// of 64 to [`MAX_APNS_TOKEN`] hex digits (an even number), a topic (the
/// app's bundle id) of letters, digits, `.`, `-` and `_`.
pub fn apns_endpoint(environment: ApnsEnvironment, topic: &str, token: &str) -> Option<String> {
    let token_ok = (64..=MAX_APNS_TOKEN).contains(&token.len())
        && token.len() % 2 == 0
        && token.bytes().all(|b| b.is_ascii_hexdigit());
    let topic_ok = (1..=255).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (token_ok && topic_ok).then(|| {
        format!(
            "apns:{}:{topic}:{}",
            environment.as_str(),
            token.to_ascii_lowercase()
        )
    })
}

/// The endpoint string of an FCM device, if the token looks like one:
/// 1 to [`MAX_FCM_TOKEN`] characters of letters, digits, `-`, `_` and `:`.
pub fn fcm_endpoint(token: &str) -> Option<String> {
    let ok = (1..=MAX_FCM_TOKEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b));
    ok.then(|| format!("fcm:{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_kind_and_round_trip() {
        let token = "AB".repeat(32);
        let apns = apns_endpoint(ApnsEnvironment::Sandbox, "com.example.mail", &token).unwrap();
        assert_eq!(
            Target::of(&apns),
            Target::Apns {
                environment: ApnsEnvironment::Sandbox,
                topic: "com.example.mail",
                token: &"ab".repeat(32),
            }
        );
        let fcm = fcm_endpoint("dA1b:APA91b-x_y").unwrap();
        assert_eq!(
            Target::of(&fcm),
            Target::Fcm {
                token: "dA1b:APA91b-x_y"
            }
        );
        assert_eq!(Target::of("https://push.example/x").kind(), "webpush");
        assert_eq!(Target::of("apns:moon:x:y").kind(), "webpush");
    }

    #[test]
    fn bad_tokens_and_topics_are_refused() {
        let env = ApnsEnvironment::Production;
        assert!(apns_endpoint(env, "com.example", "abc").is_none());
        assert!(apns_endpoint(env, "com.example", &"g".repeat(64)).is_none());
        assert!(apns_endpoint(env, "com.example", &"a".repeat(65)).is_none());
        assert!(apns_endpoint(env, "com:example", &"a".repeat(64)).is_none());
        assert!(fcm_endpoint("").is_none());
        assert!(fcm_endpoint("a b").is_none());
        assert!(fcm_endpoint(&"a".repeat(MAX_FCM_TOKEN + 1)).is_none());
    }
}
