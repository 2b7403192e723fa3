//! The benchmark's Web Push receiver: accepts every POST on `/push/{account}`
//! with 201 at once, records when it arrived, its `Topic` header and its
//! body, and decrypts bodies with
//! the `ece` crate (independent of the gateway's ring code) to check what
//! each push says. All devices share one key pair, so any body decrypts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// One POST as it arrived.
pub struct Arrival {
    pub account: usize,
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    /// The `Topic` header, if any.
    pub topic: Option<String>,
    pub body: Bytes,
}

/// What a decrypted push says.
pub struct Opened {
    pub account: usize,
    /// The payload's `type`: "mail", "read", …
    pub kind: String,
    pub at_us: u64,
    pub count: u64,
    pub uids: Vec<u32>,
    pub topic: Option<String>,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    keys: Arc<ece::crypto::EcKeyComponents>,
    auth: [u8; 16],
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn record(
    State(arrivals): State<Arc<Mutex<Vec<Arrival>>>>,
    Path(account): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at_us = now_us();
    let topic = headers
        .get("topic")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    arrivals.lock().unwrap().push(Arrival {
        account,
        at_us,
        topic,
        body,
    });
    StatusCode::CREATED
}

impl Receiver {
    pub async fn start() -> Receiver {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().expect("device keys");
        let keys = pair.raw_components().expect("key components");
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/push/{account}", axum::routing::post(record))
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            arrivals,
            keys: Arc::new(keys),
            auth,
        }
    }

    /// The subscription of account `i`'s device, as a browser gives it.
    pub fn subscription(&self, account: usize) -> serde_json::Value {
        serde_json::json!({
            "endpoint": format!("http://127.0.0.1:{}/push/{account}", self.port),
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(self.keys.public_key()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// Takes every arrival recorded so far.
    pub fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }

    /// Decrypts and reads one push; panics on a body that does not decrypt.
    pub fn open(&self, arrival: &Arrival) -> Opened {
        let plain = ece::decrypt(&self.keys, &self.auth, &arrival.body).unwrap_or_else(|e| {
            panic!("push to account {} does not decrypt: {e}", arrival.account)
        });
        let payload: serde_json::Value = serde_json::from_slice(&plain).expect("payload JSON");
        let uids = payload["messages"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| m["uid"].as_u64().map(|u| u as u32))
                    .collect()
            })
            .unwrap_or_default();
        Opened {
            account: arrival.account,
            kind: payload["type"].as_str().unwrap_or_default().to_string(),
            at_us: arrival.at_us,
            count: payload["count"].as_u64().unwrap_or(0),
            uids,
            topic: arrival.topic.clone(),
        }
    }
}

/// Exactly-once bookkeeping for one phase. A push lists at most
/// `watch.fetch_limit` messages and counts the rest, so mail is accounted
/// per account by the pushes' counts (which come from the gateway's UID
/// search from its cursor); listed UIDs are also checked for repeats.
#[derive(Default)]
pub struct Tally {
    counted: HashMap<usize, u64>,
    listed: HashMap<(usize, u32), u32>,
}

impl Tally {
    /// Counts a mail push (other kinds count nothing).
    pub fn add(&mut self, opened: &Opened) {
        if opened.kind != "mail" {
            return;
        }
        *self.counted.entry(opened.account).or_default() += opened.count;
        for uid in &opened.uids {
            *self.listed.entry((opened.account, *uid)).or_default() += 1;
        }
    }

    /// Whether every account was pushed at least as much mail as `expected` says.
    pub fn covers(&self, expected: &HashMap<usize, u64>) -> bool {
        expected
            .iter()
            .all(|(a, n)| self.counted.get(a).copied().unwrap_or(0) >= *n)
    }

    /// (missed, duplicated by count, listed UIDs pushed more than once).
    pub fn check(&self, expected: &HashMap<usize, u64>) -> (u64, u64, usize) {
        let mut missed = 0;
        let mut dup = 0;
        for (a, n) in expected {
            let c = self.counted.get(a).copied().unwrap_or(0);
            missed += n.saturating_sub(c);
            dup += c.saturating_sub(*n);
        }
        for (a, c) in &self.counted {
            if !expected.contains_key(a) {
                dup += c;
            }
        }
        let repeated = self.listed.values().filter(|n| **n > 1).count();
        (missed, dup, repeated)
    }
}
