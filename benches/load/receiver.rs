//! The benchmark's Web Push receiver: accepts every POST on `/push/{account}`
//! with 201, records when it arrived and its body, and decrypts bodies with
//! the `ece` crate (independent of the gateway's ring code) to check what
//! each push says. All devices share one key pair, so any body decrypts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// One POST as it arrived.
pub struct Arrival {
    pub account: usize,
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    pub body: Bytes,
}

/// What a decrypted push says.
pub struct Opened {
    pub account: usize,
    pub at_us: u64,
    pub count: u64,
    pub uids: Vec<u32>,
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
    body: Bytes,
) -> StatusCode {
    let at_us = now_us();
    arrivals.lock().unwrap().push(Arrival {
        account,
        at_us,
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

    pub fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
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
            at_us: arrival.at_us,
            count: payload["count"].as_u64().unwrap_or(0),
            uids,
        }
    }
}

/// Exactly-once bookkeeping: which UIDs each account was sent.
#[derive(Default)]
pub struct Tally {
    seen: HashMap<(usize, u32), u32>,
    /// Pushes whose count exceeded the UIDs they listed.
    pub unlisted: u64,
}

impl Tally {
    pub fn add(&mut self, opened: &Opened) {
        for uid in &opened.uids {
            *self.seen.entry((opened.account, *uid)).or_default() += 1;
        }
        self.unlisted += opened.count.saturating_sub(opened.uids.len() as u64);
    }

    pub fn times_seen(&self, account: usize, uid: u32) -> u32 {
        self.seen.get(&(account, uid)).copied().unwrap_or(0)
    }
}
