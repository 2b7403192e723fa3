//! The send side of the API in protobuf: bodies and answers.

use std::time::Duration;

use crate::support::gateway::{data_dir, Gateway};
use crate::support::send::*;

/// The write routes speak protobuf both ways as the proto promises: a
/// registration and a send made of protobuf bodies, answered in protobuf,
/// the send's status read back in protobuf; the mail goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_sending_in_protobuf() {
    use lemonade::proto::v1 as pb;
    use prost::Message;

    const PROTOBUF: &str = "application/x-protobuf";
    let (sink, dovecot) = mail_servers(None);
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let http = reqwest::Client::new();
    let server = |port: u16| pb::ServerLogin {
        host: dovecot.host().into(),
        port: u32::from(port),
        security: "plain".into(),
        username: USER.into(),
        password: PASS.into(),
    };
    let request = pb::CreateAccountRequest {
        email: "alice@test.local".into(),
        imap: Some(server(dovecot.imap_port())),
        oauth: None,
        smtp: Some(server(dovecot.submission_port())),
    };
    let answer = http
        .post(gateway.at("/v1/accounts"))
        .header("content-type", PROTOBUF)
        .header("accept", PROTOBUF)
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(answer.headers()["content-type"], PROTOBUF);
    let created = pb::CreateAccountResponse::decode(answer.bytes().await.unwrap()).unwrap();
    assert!(!created.token.is_empty());

    let send = pb::SendRequest {
        to: vec!["bob@test.local".into()],
        subject: "In protobuf".into(),
        text: "Sent as a protobuf body.".into(),
        ..Default::default()
    };
    let answer = http
        .post(gateway.at("/v1/send"))
        .bearer_auth(&created.token)
        .header("content-type", PROTOBUF)
        .header("accept", PROTOBUF)
        .body(send.encode_to_vec())
        .send()
        .await
        .unwrap();
    let status_code = answer.status().as_u16();
    assert!(status_code == 200 || status_code == 202, "{status_code}");
    let accepted = pb::SendStatusResponse::decode(answer.bytes().await.unwrap()).unwrap();
    assert!(!accepted.send_id.is_empty());
    assert!(
        !accepted.message_id.contains('<'),
        "{}",
        accepted.message_id
    );
    let received = sink.wait_for(1, Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&received[0].data).contains("Subject: In protobuf"));
    let done = wait_final(&gateway, &created.token, &accepted.send_id).await;
    assert_eq!(done["status"], "done", "{done}");
    let status = http
        .get(gateway.at(&format!("/v1/send/{}", accepted.send_id)))
        .bearer_auth(&created.token)
        .header("accept", PROTOBUF)
        .send()
        .await
        .unwrap();
    let status = pb::SendStatusResponse::decode(status.bytes().await.unwrap()).unwrap();
    assert_eq!(status.send_id, accepted.send_id);
    assert_eq!(status.status, "done");
    assert!(status.bytes.unwrap().to_smtp > 0);
    gateway.stop().await;
}
