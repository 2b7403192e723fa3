//! Small helpers for tests of the API's answers: error codes, raw bodies,
//! and what a stopped gateway left in its store.

use serde_json::Value;

use super::gateway::Gateway;

/// The `code` of an error answer (empty when there is none).
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// POSTs raw bytes with a content type of the caller's choice.
pub async fn raw_post(
    gateway: &Gateway,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = gateway
        .http
        .post(gateway.at(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How many accounts the stopped gateway's store in `dir` holds.
pub async fn stored_accounts(dir: &std::path::Path) -> usize {
    use lemonade::store::{SledStore, Store};
    let store = SledStore::open(&dir.join("db")).unwrap();
    store.accounts().await.unwrap().len()
}
