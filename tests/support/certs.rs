//! A throwaway CA and a certificate for 127.0.0.1–127.0.0.8 made with
//! `openssl`, for TLS on loopback in tests and benchmarks (the load benchmark
//! listens on all eight addresses).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A CA and a server certificate for 127.0.0.1–127.0.0.8 and localhost
/// signed by it, via openssl.
pub fn make_certificates(root: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(root)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let subject = format!("/CN={name}");
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &subject,
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    let ips: Vec<String> = (1..=8).map(|i| format!("IP:127.0.0.{i}")).collect();
    fs::write(
        root.join("server.ext"),
        format!(
            "subjectAltName={},DNS:localhost\nbasicConstraints=CA:FALSE\n\
keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
            ips.join(",")
        ),
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    // The login processes read the key as root before dropping privileges.
    fs::set_permissions(root.join("server.key"), fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A TLS acceptor with the server certificate `make_certificates` wrote.
// The load benchmarks include this file without starting a TLS server.
#[allow(dead_code)]
pub fn tls_acceptor(certs: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let chain = std::fs::read(certs.join("server.pem")).expect("read server.pem");
    let chain = rustls_pemfile::certs(&mut chain.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("parse server.pem");
    let key = std::fs::read(certs.join("server.key")).expect("read server.key");
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .expect("parse server.key")
        .expect("a key in server.key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls))
}
