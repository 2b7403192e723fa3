//! `GET /v1/openapi.json`: an OpenAPI 3.1 document of the HTTP API.
//!
//! Schemas are generated from the compiled `proto/` descriptors (the same
//! ones the server's types come from, in their proto3 JSON form), so the
//! document cannot drift from the messages; the route table below is
//! checked against the router by a test that reads the router's source.

use axum::response::IntoResponse;
use axum::Json;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::FileDescriptorSet;
use serde_json::{json, Map, Value};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy)]
pub enum In {
    Path,
    Query,
    Header,
}

/// One parameter: name, place, JSON type, required, description.
pub type Param = (&'static str, In, &'static str, bool, &'static str);

/// One operation of the API.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// A message of `lemonade.v1` for the body, when the body is protobuf/JSON.
    pub request: Option<&'static str>,
    /// A message of `lemonade.v1`; `None` for plain JSON or raw bytes answers.
    pub response: Option<&'static str>,
    pub params: &'static [Param],
    /// Needs the bearer token.
    pub auth: bool,
}

const UPLOAD_ID: Param = (
    "upload_id",
    In::Path,
    "string",
    true,
    "as returned by POST /v1/uploads",
);

const MAILBOX: Param = (
    "mailbox",
    In::Path,
    "string",
    true,
    "mailbox name, percent-encoded",
);
const UID: Param = ("uid", In::Path, "integer", true, "message UID");

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/v1/mailboxes",
        summary: "Mailboxes with role, counts and a state token",
        request: None,
        response: Some("ListMailboxesResponse"),
        params: &[],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/mailboxes/{mailbox}/messages",
        summary: "Newest messages first, with previews",
        request: None,
        response: Some("ListMessagesResponse"),
        params: &[
            MAILBOX,
            (
                "limit",
                In::Query,
                "integer",
                false,
                "at most read.max_list; default 50",
            ),
            (
                "before_uid",
                In::Query,
                "integer",
                false,
                "only messages below this UID (paging)",
            ),
        ],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/mailboxes/{mailbox}/changes",
        summary: "What changed since a state token (410 resync_required when unusable)",
        request: None,
        response: Some("ChangesResponse"),
        params: &[
            MAILBOX,
            ("since", In::Query, "string", true, "a state token"),
            (
                "limit",
                In::Query,
                "integer",
                false,
                "most new messages returned",
            ),
        ],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/messages/{mailbox}/{uid}",
        summary: "Headers, MIME structure and the body as text",
        request: None,
        response: Some("GetMessageResponse"),
        params: &[
            MAILBOX,
            UID,
            (
                "max_bytes",
                In::Query,
                "integer",
                false,
                "longest text returned, in bytes",
            ),
        ],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/messages/{mailbox}/{uid}/parts/{part}",
        summary: "The decoded bytes of one part; honours Range (206)",
        request: None,
        response: None,
        params: &[
            MAILBOX,
            UID,
            (
                "part",
                In::Path,
                "string",
                true,
                "IMAP part specifier such as 2 or 1.2",
            ),
            (
                "Range",
                In::Header,
                "string",
                false,
                "bytes=a-b, bytes=a- or bytes=-n",
            ),
        ],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/messages/flags",
        summary: "Add or remove flags on messages",
        request: Some("FlagsRequest"),
        response: Some("BatchResponse"),
        params: &[],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/messages/move",
        summary: "Move messages to another mailbox",
        request: Some("MoveRequest"),
        response: Some("BatchResponse"),
        params: &[],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/messages/delete",
        summary: "Expunge messages",
        request: Some("DeleteRequest"),
        response: Some("BatchResponse"),
        params: &[],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/search",
        summary: "Server-side search (ESEARCH where available)",
        request: None,
        response: Some("SearchResponse"),
        params: &[
            ("mailbox", In::Query, "string", false, "default INBOX"),
            ("from", In::Query, "string", false, ""),
            ("to", In::Query, "string", false, ""),
            ("subject", In::Query, "string", false, ""),
            ("text", In::Query, "string", false, ""),
            ("since", In::Query, "string", false, "YYYY-MM-DD"),
            ("before", In::Query, "string", false, "YYYY-MM-DD"),
            ("unseen", In::Query, "boolean", false, ""),
            ("flagged", In::Query, "boolean", false, ""),
            (
                "limit",
                In::Query,
                "integer",
                false,
                "most summaries returned; default 20",
            ),
        ],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/openapi.json",
        summary: "This document",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
    Route {
        method: "post",
        path: "/v1/accounts",
        summary: "Register an IMAP account (JSON; see docs/api.md)",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
    Route {
        method: "get",
        path: "/v1/accounts/me",
        summary: "The account and its watch state (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "delete",
        path: "/v1/accounts/me",
        summary: "Delete the account",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/devices",
        summary: "The account's devices (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/devices",
        summary: "Register a Web Push device (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/devices/{device_id}/test",
        summary: "Send the device a test push now: 200 {\"delivered\": true}; 410 device_gone (removed); 502 when its push service refused or did not answer",
        request: None,
        response: None,
        params: &[("device_id", In::Path, "string", true, "")],
        auth: true,
    },
    Route {
        method: "delete",
        path: "/v1/devices/{device_id}",
        summary: "Remove a device",
        request: None,
        response: None,
        params: &[("device_id", In::Path, "string", true, "")],
        auth: true,
    },
    Route {
        method: "delete",
        path: "/v1/tokens",
        summary: "Revoke the account's other tokens (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "delete",
        path: "/v1/tokens/current",
        summary: "Revoke this token",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/push/vapid",
        summary: "The VAPID public key (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
    Route {
        method: "post",
        path: "/v1/uploads",
        summary: "Upload a file (raw body; Upload-Length for a resumable upload)",
        request: None,
        response: Some("UploadResponse"),
        params: &[
            (
                "Content-Type",
                In::Header,
                "string",
                false,
                "the file's media type",
            ),
            (
                "Upload-Length",
                In::Header,
                "integer",
                false,
                "total size, for a resumable upload",
            ),
        ],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/uploads/{upload_id}",
        summary: "An upload's size so far (Upload-Offset header)",
        request: None,
        response: None,
        params: &[UPLOAD_ID],
        auth: true,
    },
    Route {
        method: "head",
        path: "/v1/uploads/{upload_id}",
        summary: "An upload's size so far (Upload-Offset header)",
        request: None,
        response: None,
        params: &[UPLOAD_ID],
        auth: true,
    },
    Route {
        method: "patch",
        path: "/v1/uploads/{upload_id}",
        summary: "Append to a resumable upload at Upload-Offset",
        request: None,
        response: Some("UploadResponse"),
        params: &[
            UPLOAD_ID,
            (
                "Upload-Offset",
                In::Header,
                "integer",
                true,
                "where this chunk starts",
            ),
        ],
        auth: true,
    },
    Route {
        method: "post",
        path: "/v1/send",
        summary: "Send a message (202 queued, or 200 with the final status)",
        request: Some("SendRequest"),
        response: Some("SendAccepted"),
        params: &[(
            "Idempotency-Key",
            In::Header,
            "string",
            false,
            "the same key returns the same send and never sends twice",
        )],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/send/settings",
        summary: "The account's send settings: save_sent, sent_mailbox",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "put",
        path: "/v1/send/settings",
        summary: "Change the send settings (JSON: save_sent, sent_mailbox)",
        request: None,
        response: None,
        params: &[],
        auth: true,
    },
    Route {
        method: "get",
        path: "/v1/send/{send_id}",
        summary: "A send's status, path, Sent copy and byte counts",
        request: None,
        response: Some("SendStatusResponse"),
        params: &[(
            "send_id",
            In::Path,
            "string",
            true,
            "as returned by POST /v1/send",
        )],
        auth: true,
    },
    Route {
        method: "get",
        path: "/healthz",
        summary: "Health (JSON)",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "Readiness (JSON): 200 while this node holds its cluster lease, else 503",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text)",
        request: None,
        response: None,
        params: &[],
        auth: false,
    },
];

/// JSON Schemas of every message in `proto/`, by short name.
fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(set) = FileDescriptorSet::decode(crate::proto::DESCRIPTOR_SET) else {
        return out;
    };
    for file in &set.file {
        for message in &file.message_type {
            let mut properties = Map::new();
            for field in &message.field {
                let ty = match field.r#type() {
                    Type::String => json!({"type": "string"}),
                    Type::Bool => json!({"type": "boolean"}),
                    Type::Uint32 | Type::Int32 | Type::Sint32 | Type::Fixed32 | Type::Sfixed32 => {
                        json!({"type": "integer"})
                    }
                    // proto3 JSON writes 64-bit integers as strings.
                    Type::Uint64 | Type::Int64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64 => {
                        json!({"type": "string", "format": "int64"})
                    }
                    Type::Double | Type::Float => json!({"type": "number"}),
                    Type::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
                    Type::Enum => json!({"type": "string"}),
                    Type::Message | Type::Group => {
                        let name = field.type_name().rsplit('.').next().unwrap_or("");
                        json!({"$ref": format!("#/components/schemas/{name}")})
                    }
                };
                let ty = if field.label() == Label::Repeated {
                    json!({"type": "array", "items": ty})
                } else {
                    ty
                };
                properties.insert(field.name().to_string(), ty);
            }
            out.insert(
                message.name().to_string(),
                json!({"type": "object", "properties": properties}),
            );
        }
    }
    out
}

fn content(message: &str) -> Value {
    let r = json!({"schema": {"$ref": format!("#/components/schemas/{message}")}});
    json!({"application/json": r, "application/x-protobuf": r})
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        let params: Vec<Value> = route
            .params
            .iter()
            .map(|(name, place, ty, required, description)| {
                let place = match place {
                    In::Path => "path",
                    In::Query => "query",
                    In::Header => "header",
                };
                json!({"name": name, "in": place, "required": required, "description": description, "schema": {"type": ty}})
            })
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(request) = route.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": content(request)}),
            );
        }
        let ok = match route.response {
            Some(m) => json!({"description": "OK", "content": content(m)}),
            None => json!({"description": "OK"}),
        };
        let mut responses = json!({"200": ok, "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}});
        if route.path.ends_with("/parts/{part}") {
            responses["206"] = json!({"description": "the requested range"});
            responses["416"] = json!({"description": "range outside the part"});
        }
        op.insert("responses".into(), responses);
        if route.auth {
            op.insert("security".into(), json!([{"bearer": []}]));
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(route.method.into(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Lemonade", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Push mail gateway API. Read API bodies: JSON (proto3 JSON mapping, proto field names) or protobuf by Accept/Content-Type; schema in proto/lemonade/v1."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

pub async fn serve() -> impl IntoResponse {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(path, method(..))` in the router's source is documented.
    #[test]
    fn every_route_is_documented() {
        let source = include_str!("mod.rs");
        let doc = document();
        let mut seen = 0;
        for chunk in source.split(".route(").skip(1) {
            let Some(path) = chunk.split('"').nth(1) else {
                continue;
            };
            let body = chunk.split(".route(").next().unwrap_or("");
            let body = body.split(".fallback").next().unwrap_or(body);
            for method in ["get", "post", "delete", "put", "patch", "head"] {
                if body.contains(&format!("{method}(")) {
                    assert!(
                        doc["paths"][path][method].is_object(),
                        "{method} {path} missing from the OpenAPI document"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen >= 18, "only {seen} routes found");
        for route in ROUTES {
            assert!(
                source.contains(&format!("\"{}\"", route.path)),
                "{} documented but not routed",
                route.path
            );
            if let Some(m) = route.response.or(route.request) {
                assert!(doc["components"]["schemas"][m].is_object(), "{m}");
            }
        }
    }

    #[test]
    fn schemas_follow_the_proto() {
        let s = schemas();
        assert_eq!(
            s["MessageSummary"]["properties"]["has_attachments"]["type"],
            "boolean"
        );
        assert_eq!(
            s["ChangesResponse"]["properties"]["vanished"]["type"],
            "array"
        );
        assert_eq!(
            s["SendRequest"]["properties"]["attachments"]["items"]["$ref"],
            "#/components/schemas/Attachment"
        );
        assert!(s.contains_key("PushPayload"));
    }
}
