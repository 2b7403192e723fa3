//! The API's message types, generated at build time from `proto/` (prost for
//! protobuf, pbjson for the proto3 JSON mapping with the proto field names).
//! `proto/` is the one schema clients generate their code from.
#![allow(clippy::all, missing_docs)]

/// `lemonade.v1`: the API's routes and messages, and the push payload.
pub mod lemonade {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/lemonade.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/lemonade.v1.serde.rs"));
    }
}
pub use lemonade::v1;

/// `google.api`: `HttpBody`, the type of bodies that are not messages.
pub mod google {
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
        include!(concat!(env!("OUT_DIR"), "/google.api.serde.rs"));
    }
}

/// The compiled descriptors of `proto/` (a `FileDescriptorSet`).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lemonade_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::v1;
    use crate::mail::{Address, MessageSummary};
    use crate::store::PayloadTier;

    /// The pushes the notifier sends decode as `PushPayload`: one schema.
    #[test]
    fn push_payloads_follow_the_schema() {
        let messages = [MessageSummary {
            uid: 9,
            from: Address {
                name: "Zoë".into(),
                email: "zoe@example.org".into(),
            },
            subject: "Hi".into(),
            preview: "Hello there".into(),
            ..Default::default()
        }];
        for tier in [
            PayloadTier::Wake,
            PayloadTier::Count,
            PayloadTier::Headers,
            PayloadTier::Preview,
        ] {
            let raw = crate::notify::payload::build(
                tier,
                &crate::notify::payload::Mail::new("a1", "INBOX", 1),
                &messages,
                4000,
            );
            let p: v1::PushPayload = serde_json::from_slice(&raw)
                .unwrap_or_else(|e| panic!("{tier:?}: {e}: {}", String::from_utf8_lossy(&raw)));
            assert_eq!(p.v, 1);
            if tier == PayloadTier::Preview {
                assert_eq!(p.messages[0].preview, "Hello there");
                assert_eq!(p.messages[0].from.as_ref().unwrap().name, "Zoë");
            }
        }
    }

    /// The send API's JSON, as its contract writes it, decodes into the
    /// schema's messages, and they encode back to the same keys.
    #[test]
    fn send_contract_follows_the_schema() {
        let req: v1::SendRequest = serde_json::from_value(serde_json::json!({
            "to": ["a@example.org"], "cc": [], "bcc": ["b@example.org"],
            "subject": "S", "text": "T", "html": "<p>T</p>",
            "attachments": [{"upload_id": "u1"}, {"ref": {"mailbox": "INBOX", "uid": 4, "part": "2"}}],
            "in_reply_to": {"mailbox": "INBOX", "uid": 3},
            "forward": {"mailbox": "INBOX", "uid": 4}
        }))
        .unwrap();
        assert_eq!(req.attachments.len(), 2);
        assert!(matches!(
            &req.attachments[1].source,
            Some(v1::attachment::Source::Ref(r)) if r.part == "2"
        ));
        let status: v1::SendStatusResponse = serde_json::from_value(serde_json::json!({
            "status": "failed", "path": "burl",
            "sent": {"mailbox": "Sent", "uid": 7},
            "error": {"code": "smtp_rejected", "message": "no", "smtp_reply": "550 no"},
            "bytes": {"from_client": 10, "to_imap": 20, "to_smtp": 30}
        }))
        .unwrap();
        assert_eq!(status.bytes.as_ref().unwrap().to_smtp, 30);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["bytes"]["from_client"], 10);
        assert_eq!(json["error"]["smtp_reply"], "550 no");
        let upload: v1::UploadResponse = serde_json::from_value(
            serde_json::json!({"upload_id": "u1", "size": 5, "sha256": "ab"}),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&upload).unwrap()["size"], 5);
        // Unknown fields are refused (also the `from` a send cannot set),
        // and lowerCamelCase names are taken as well as proto names.
        assert!(
            serde_json::from_value::<v1::SendRequest>(serde_json::json!({"from": "x"})).is_err()
        );
        let camel: v1::SendRequest = serde_json::from_value(
            serde_json::json!({"inReplyTo": {"mailbox": "INBOX", "uid": 3}}),
        )
        .unwrap();
        assert_eq!(camel.in_reply_to.unwrap().uid, 3);
    }
}
