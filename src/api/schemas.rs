//! JSON Schemas of the API's messages, made from the proto descriptors in
//! their proto3 JSON form (proto field names; 64-bit integers as strings):
//! the `components.schemas` of the OpenAPI document.
//!
//! What a schema requires follows the JSON convention: an answer always
//! carries every field without presence (`""`, `0`, `false`, `[]` when
//! empty), so those are required in messages the server writes; in
//! messages only clients write, the fields marked
//! `(google.api.field_behavior) = REQUIRED` are.

use std::collections::BTreeSet;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};

use super::contract::{self, comment};
use crate::error_code::ErrorCode;

/// Values of string fields that take one of a few words, by field name.
fn words(field: &FieldDescriptor) -> Option<Vec<&'static str>> {
    use crate::store::{PayloadTier, Security};
    let name = format!("{}.{}", field.parent_message().name(), field.name());
    let list: Vec<&'static str> = match name.as_str() {
        "Server.security" | "ServerLogin.security" => {
            Security::ALL.iter().map(|s| s.as_str()).collect()
        }
        "QuietHours.days" => crate::rules::Weekday::ALL
            .iter()
            .map(|d| d.as_str())
            .collect(),
        "Device.payload" | "CreateDeviceResponse.payload" => {
            PayloadTier::ALL.iter().map(|t| t.as_str()).collect()
        }
        "WatchStatus.state" => crate::watch::WatchState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
        "SendStatusResponse.status" => vec!["queued", "stored", "submitted", "done", "failed"],
        "SendStatusResponse.path" => vec!["burl", "catenate", "assembled"],
        _ => return None,
    };
    Some(list)
}

fn field_schema(field: &FieldDescriptor) -> Value {
    let mut ty = match field.kind() {
        Kind::String => match words(field) {
            Some(list) => json!({"type": "string", "enum": list}),
            None => json!({"type": "string"}),
        },
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        // proto3 JSON writes 64-bit integers as strings.
        Kind::Uint64 | Kind::Int64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(e) => {
            json!({"type": "string", "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>()})
        }
        Kind::Message(m) => json!({"$ref": reference(&m)}),
    };
    if field.is_list() {
        ty = json!({"type": "array", "items": ty});
    }
    let text = comment(field.parent_file(), field.path());
    if !text.is_empty() {
        if let Value::Object(map) = &mut ty {
            map.insert("description".into(), json!(text));
        }
    }
    ty
}

/// `#/components/schemas/Name` of a message.
pub fn reference(message: &MessageDescriptor) -> String {
    format!("#/components/schemas/{}", message.name())
}

/// Whether the field has presence (proto3 `optional`, a message, a oneof
/// member): absent from answers when unset.
fn has_presence(field: &FieldDescriptor) -> bool {
    field.supports_presence() && !field.is_list()
}

fn message_schema(message: &MessageDescriptor, written_by_server: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in message.fields() {
        properties.insert(field.name().to_string(), field_schema(&field));
        let needed = if written_by_server {
            !has_presence(&field)
        } else {
            contract::is_required(&field)
        };
        if needed {
            required.push(field.name().to_string());
        }
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    let text = comment(message.parent_file(), message.path());
    if !text.is_empty() {
        schema["description"] = json!(text);
    }
    let alternatives: Vec<Value> = message
        .oneofs()
        .filter(|o| !o.is_synthetic())
        .map(|o| {
            let names: Vec<String> = o.fields().map(|f| f.name().to_string()).collect();
            json!(names)
        })
        .collect();
    if let Some(Value::Array(names)) = alternatives.first() {
        schema["oneOf"] = names
            .iter()
            .map(|n| json!({"required": [n]}))
            .collect::<Vec<_>>()
            .into();
    }
    schema
}

/// Messages reachable from `roots` through their fields.
fn reachable(roots: impl Iterator<Item = MessageDescriptor>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<MessageDescriptor> = roots.collect();
    while let Some(message) = stack.pop() {
        if !seen.insert(message.full_name().to_string()) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(m) = field.kind() {
                stack.push(m);
            }
        }
    }
    seen
}

/// Schemas of every message of the API's package (and the `google.api`
/// ones they use), plus `ErrorCode`, the catalogue of error codes.
pub fn schemas() -> Map<String, Value> {
    let rules = contract::rules();
    // Requests that are not the body (path and query parameters, and a
    // body field) have no schema of their own.
    let parameters: Vec<_> = rules.iter().filter(|r| r.body != "*").collect();
    let from_clients = reachable(rules.iter().filter_map(|r| r.body_message()));
    let from_server = reachable(rules.iter().map(|r| r.output.clone()));
    let mut out = Map::new();
    for message in contract::pool().all_messages() {
        let name = message.full_name();
        let used = from_clients.contains(name) || from_server.contains(name);
        let documents_a_push = message.package_name() == contract::PACKAGE
            && !parameters.iter().any(|r| r.input.full_name() == name);
        if !(used || documents_a_push) || message.package_name().starts_with("google.protobuf") {
            continue;
        }
        let written_by_server = from_server.contains(name) || !from_clients.contains(name);
        out.insert(
            message.name().to_string(),
            message_schema(&message, written_by_server),
        );
    }
    out.insert("ErrorCode".into(), error_codes());
    if let Some(detail) = out.get_mut("ErrorDetail") {
        detail["properties"]["code"] = json!({"$ref": "#/components/schemas/ErrorCode"});
    }
    out
}

/// The error catalogue as a schema: every code, with its status and meaning.
fn error_codes() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let table: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| {
            format!(
                "- `{}` ({}): {}",
                c.as_str(),
                c.status().as_u16(),
                c.meaning()
            )
        })
        .collect();
    json!({
        "type": "string",
        "enum": codes,
        "description": format!("Every error code the API answers with:\n\n{}", table.join("\n")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_follow_the_proto() {
        let s = schemas();
        let summary = &s["MessageSummary"];
        assert_eq!(summary["properties"]["has_attachments"]["type"], "boolean");
        assert!(summary["required"]
            .as_array()
            .unwrap()
            .contains(&json!("uid")));
        assert_eq!(
            s["ChangesResponse"]["properties"]["vanished"]["type"],
            "array"
        );
        assert_eq!(
            s["SendRequest"]["properties"]["attachments"]["items"]["$ref"],
            "#/components/schemas/Attachment"
        );
        // Optional and message fields of answers are not required.
        let status = s["SendStatusResponse"]["required"].as_array().unwrap();
        assert!(status.contains(&json!("send_id")));
        assert!(!status.contains(&json!("error")));
        // A request requires only what the proto marks.
        assert_eq!(s["CreateAccountRequest"]["required"], json!(["email"]));
        assert_eq!(s["Attachment"]["oneOf"][1]["required"], json!(["ref"]));
        assert_eq!(
            s["ServerLogin"]["properties"]["security"]["enum"],
            json!(["tls", "starttls", "plain"])
        );
        assert!(s.contains_key("PushPayload"));
        assert!(s.contains_key("HttpBody"));
        // Requests carried by the path and query have none.
        assert!(!s.contains_key("GetMessageRequest"));
        // A body that is one field of the request: that field's message,
        // written by clients.
        assert!(!s.contains_key("UpdateDeviceRequest"));
        assert_eq!(
            s["QuietHours"]["properties"]["days"]["items"]["enum"][6],
            "sun"
        );
        assert!(s["DeviceChanges"].get("required").is_none());
        assert_eq!(
            s["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }
}
