//! A client of the read API for tests: GETs in JSON and protobuf that must
//! decode to the same message.
#![allow(dead_code)]

use prost::Message;
use serde_json::Value;

use super::gateway::Gateway;

pub const PROTOBUF: &str = "application/x-protobuf";

/// GET with an Accept header; (status, content-type, body bytes).
pub async fn get_raw(g: &Gateway, path: &str, token: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let r = g
        .http
        .get(g.at(path))
        .bearer_auth(token)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// GETs `path` as JSON and as protobuf and checks both decode to the same message.
pub async fn get_both<T>(g: &Gateway, path: &str, token: &str) -> T
where
    T: Message + Default + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (status, ct, json_bytes) = get_raw(g, path, token, "application/json").await;
    assert_eq!(
        status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&json_bytes)
    );
    assert_eq!(ct, "application/json");
    let from_json: T = serde_json::from_slice(&json_bytes).unwrap();
    let (status, ct, proto_bytes) = get_raw(g, path, token, PROTOBUF).await;
    assert_eq!(status, 200);
    assert_eq!(ct, PROTOBUF);
    let from_proto = T::decode(proto_bytes.as_slice()).unwrap();
    assert_eq!(from_json, from_proto, "{path}: JSON and protobuf differ");
    from_json
}

pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
