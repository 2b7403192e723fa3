//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API.
//!
//! Made from the route registry (`routes.rs`: statuses, headers, error
//! codes, security) and the proto contract (`contract.rs`: paths, methods,
//! parameters, bodies, comments; `schemas.rs`: the messages), the same
//! sources the router is built from, so the document cannot drift from
//! what is served.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use prost_reflect::Kind;
use serde_json::{json, Map, Value};

use super::contract::{self, HttpRule};
use super::routes::{self, Doc, Route};
use super::schemas::{reference, schemas};
use crate::error_code::ErrorCode;

/// Errors every operation of a kind can answer with, beyond its own.
fn common_errors(rule: &HttpRule, doc: &Doc) -> Vec<ErrorCode> {
    let mut codes = Vec::new();
    if doc.auth {
        codes.extend([ErrorCode::Unauthorized, ErrorCode::StorageUnavailable]);
    }
    if rule.body_message().is_some() && doc.raw_body.is_none() {
        codes.extend([
            ErrorCode::MalformedJson,
            ErrorCode::MalformedProtobuf,
            ErrorCode::InvalidBody,
            ErrorCode::BodyTooLarge,
            ErrorCode::UnsupportedMediaType,
        ]);
    }
    if !doc.streaming {
        codes.push(ErrorCode::RequestTimeout);
    }
    codes
}

/// The answers for error statuses: each lists the codes it may carry.
fn error_responses(codes: impl Iterator<Item = ErrorCode>) -> BTreeMap<String, Value> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        let list = by_status.entry(code.status().as_u16()).or_default();
        if !list.contains(&code) {
            list.push(code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let text: Vec<String> = codes
                .iter()
                .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
                .collect();
            let response = json!({
                "description": text.join(" "),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            });
            (status.to_string(), response)
        })
        .collect()
}

/// How a message travels: JSON always, protobuf where the route offers it.
fn message_content(message: &prost_reflect::MessageDescriptor, protobuf: bool) -> Value {
    let schema = json!({"schema": {"$ref": reference(message)}});
    let mut content = json!({"application/json": schema});
    if protobuf {
        content["application/x-protobuf"] = schema;
    }
    content
}

fn raw_content(media: &str) -> Value {
    let schema = if media == "application/json" {
        json!({"type": "object"})
    } else if media.starts_with("text/") {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "format": "binary"})
    };
    json!({ media: {"schema": schema} })
}

fn success(rule: &HttpRule, doc: &Doc, status: StatusCode, description: &str) -> Value {
    let mut response = json!({"description": description});
    if status.is_redirection() {
        response["headers"] = json!({"Location": {
            "description": "where the browser goes next",
            "schema": {"type": "string"},
        }});
    }
    if status == StatusCode::NO_CONTENT || rule.output.full_name() == "google.protobuf.Empty" {
        return response;
    }
    response["content"] = match doc.raw_answer {
        Some(media) => raw_content(media),
        None => message_content(&rule.output, doc.protobuf),
    };
    response
}

fn responses(rule: &HttpRule, doc: &Doc) -> Value {
    let mut out = Map::new();
    let ok = doc.ok.canonical_reason().unwrap_or("OK");
    out.insert(doc.ok.as_u16().to_string(), success(rule, doc, doc.ok, ok));
    for (status, description) in doc.also {
        let mut answer = success(rule, doc, *status, description);
        if status.is_server_error() {
            answer = json!({"description": description, "content": message_content(&rule.output, false)});
        }
        out.insert(status.as_u16().to_string(), answer);
    }
    let codes = common_errors(rule, doc)
        .into_iter()
        .chain(doc.errors.iter().copied());
    for (status, response) in error_responses(codes) {
        out.entry(status).or_insert(response);
    }
    Value::Object(out)
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "minimum": 0}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer"}),
        _ => json!({"type": "string"}),
    }
}

fn parameters(rule: &HttpRule, doc: &Doc) -> Vec<Value> {
    let mut out = Vec::new();
    for name in rule.path_params() {
        let field = rule.input.get_field_by_name(name);
        let schema = field
            .as_ref()
            .map_or(json!({"type": "string"}), |f| kind_schema(&f.kind()));
        let description = field
            .map(|f| contract::comment(f.parent_file(), f.path()))
            .unwrap_or_default();
        out.push(json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description}));
    }
    for field in rule.query_fields() {
        out.push(json!({
            "name": field.name(),
            "in": "query",
            "required": contract::is_required(&field),
            "schema": kind_schema(&field.kind()),
            "description": contract::comment(field.parent_file(), field.path()),
        }));
    }
    for header in doc.headers {
        out.push(json!({
            "name": header.name,
            "in": "header",
            "required": header.required,
            "schema": {"type": header.kind},
            "description": header.description,
        }));
    }
    out
}

fn request_body(rule: &HttpRule, doc: &Doc) -> Option<Value> {
    if rule.body.is_empty() {
        return None;
    }
    let content = match (doc.raw_body, rule.body_message()) {
        (Some(media), _) => raw_content(media),
        (None, Some(message)) => message_content(&message, doc.protobuf),
        (None, None) => return None,
    };
    Some(json!({"required": true, "content": content}))
}

/// `CreateAccount` → `createAccount`.
fn operation_id(rule: &HttpRule) -> String {
    let name = rule.rpc.split('.').nth(1).unwrap_or(&rule.rpc);
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn operation(rule: &HttpRule, doc: &Doc) -> Value {
    let summary = rule
        .comment
        .split_inclusive(". ")
        .next()
        .unwrap_or(&rule.comment)
        .trim()
        .trim_end_matches('.');
    let mut op = json!({
        "operationId": operation_id(rule),
        "summary": summary,
        "description": rule.comment,
        "tags": [rule.service],
        "responses": responses(rule, doc),
        "security": if doc.auth { json!([{"bearer": []}]) } else { json!([]) },
    });
    let params = parameters(rule, doc);
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    if let Some(body) = request_body(rule, doc) {
        op["requestBody"] = body;
    }
    op
}

fn paths(table: &[Route]) -> Map<String, Value> {
    let mut paths = Map::new();
    for route in table {
        let Some(rule) = contract::rule(route.rpc) else {
            continue;
        };
        let method = rule.method.as_str().to_ascii_lowercase();
        let entry = paths
            .entry(rule.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = operation(&rule, &route.doc);
    }
    paths
}

fn tags() -> Vec<Value> {
    contract::services()
        .map(|s| {
            json!({"name": s.name(), "description": contract::comment(s.parent_file(), s.path())})
        })
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lemonade",
            "version": env!("CARGO_PKG_VERSION"),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            "description": "Push mail gateway API. Bodies are JSON (the proto3 JSON mapping \
                of proto/lemonade/v1 with proto field names; lowerCamelCase names are \
                accepted in requests) or protobuf where offered, chosen by Accept and \
                Content-Type. Times are RFC 3339 UTC; Message-IDs have no angle brackets; \
                text uses LF line endings; answers carry every field (empty: \"\", 0, \
                false, []) except optional ones, which are absent when unset; never null. \
                Errors are {\"error\": {\"code\", \"message\"}} with a code of ErrorCode.",
        },
        "servers": [{"url": "/", "description": "this gateway"}],
        "tags": tags(),
        "paths": paths(&routes::table()),
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "the token from createAccount"}}
        }
    })
}

/// `GET /v1/openapi.json`: the document, built once (it depends on
/// nothing but the proto and the registry) and served as bytes.
pub async fn serve() -> impl IntoResponse {
    static SERVED: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = SERVED.get_or_init(|| document().to_string().into());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_complete() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "{id} twice");
                assert!(
                    !op["summary"].as_str().unwrap().is_empty(),
                    "{method} {path}"
                );
                assert!(op["tags"][0].is_string());
                assert!(op["security"].is_array());
                let responses = op["responses"].as_object().unwrap();
                let success = |s: &String| s.starts_with('2') || s.starts_with('3');
                assert!(responses.keys().any(success), "{id}");
            }
        }
        let create = &doc["paths"]["/v1/accounts"]["post"];
        assert_eq!(create["operationId"], "createAccount");
        assert!(create["responses"]["201"]["content"]["application/json"].is_object());
        assert!(create["responses"]["422"]["description"]
            .as_str()
            .unwrap()
            .contains("imap_auth_failed"));
        assert_eq!(create["security"], json!([]));
        assert!(create["requestBody"]["content"]["application/json"].is_object());
        let delete = &doc["paths"]["/v1/accounts/me"]["delete"];
        assert!(delete["responses"]["204"].is_object());
        assert!(delete["responses"]["204"].get("content").is_none());
        let part = &doc["paths"]["/v1/messages/{mailbox}/{uid}/parts/{part}"]["get"];
        assert!(part["responses"]["206"].is_object());
        assert!(part["responses"]["416"].is_object());
        let upload = &doc["paths"]["/v1/uploads"]["post"];
        assert_eq!(
            upload["requestBody"]["content"]["application/octet-stream"]["schema"]["format"],
            "binary"
        );
        let search = &doc["paths"]["/v1/search"]["get"];
        let names: Vec<&str> = search["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"cursor") && names.contains(&"limit"),
            "{names:?}"
        );
        assert!(doc["paths"]["/v1/uploads/{upload_id}"]["head"].is_object());
        assert_eq!(ids.len(), routes::table().len());
    }
}
