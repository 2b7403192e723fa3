//! Checks of the harness's own parts (the private PostgreSQL, the cuttable
//! proxy) and of what `deploy/` ships.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use lemonade::config::Config;

use crate::support::postgres;
use crate::support::tcp_proxy::{Counts, CuttableProxy};

/// Two fresh databases are distinct, empty and reachable over TCP.
#[tokio::test]
async fn fresh_databases_are_distinct_and_reachable() {
    let pg = postgres::server().await;
    let first = pg.fresh_database().await;
    let second = pg.fresh_database().await;
    assert_ne!(first, second);
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", pg.port());
    assert!(first.starts_with(&prefix), "{first}");
    let first_name = pg.psql(&first, "SELECT current_database()").await;
    let second_name = pg.psql(&second, "SELECT current_database()").await;
    assert_eq!(first, format!("{prefix}{first_name}"));
    assert_eq!(second, format!("{prefix}{second_name}"));
    pg.psql(
        &first,
        "CREATE TABLE marker (n int); INSERT INTO marker VALUES (7)",
    )
    .await;
    assert_eq!(pg.psql(&first, "SELECT n FROM marker").await, "7");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(pg.psql(&second, tables).await, "0", "the second is empty");
    let max = pg.psql(&second, "SHOW max_connections").await;
    assert_eq!(max, "300");
}

/// Reads until the peer closes (or resets) the connection; returns what came.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).await.expect("read");
    buf
}

/// A cut stops bytes both ways without closing anything, holds new
/// connections without relaying them, and a restore closes the held
/// connections and relays new ones. The test plays both the client and
/// the server, so it sees exactly what crossed the proxy. The bound is only
/// there so that a broken proxy fails the test instead of hanging it.
#[tokio::test]
async fn a_cut_proxy_holds_connections_silent_until_restored() {
    tokio::time::timeout(Duration::from_secs(60), cut_and_restore())
        .await
        .expect("the proxy test hung: a step that should happen did not");
}

async fn cut_and_restore() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = CuttableProxy::start(upstream.local_addr().unwrap()).await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    client.write_all(b"before").await.unwrap();
    assert_eq!(read_exactly(&mut server, 6).await, b"before");
    server.write_all(b"reply").await.unwrap();
    assert_eq!(read_exactly(&mut client, 5).await, b"reply");

    proxy.cut();
    client.write_all(b"lost-up").await.unwrap();
    server.write_all(b"lost-down").await.unwrap();
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    during.write_all(b"never").await.unwrap();
    let seen = proxy.until(|c| c.accepted >= 2 && c.lost_bytes >= 16).await;
    let expected = Counts {
        accepted: 2,
        lost_bytes: 16,
    };
    assert_eq!(seen, expected, "both writes dropped, nothing else");
    // The client's side is still open (no end of file), with nothing to read.
    let mut buf = [0u8; 16];
    let pending = client.try_read(&mut buf).unwrap_err();
    assert_eq!(pending.kind(), std::io::ErrorKind::WouldBlock);

    proxy.restore();
    for (name, side) in [
        ("client", &mut client),
        ("server", &mut server),
        ("connection made during the cut", &mut during),
    ] {
        let got = read_until_closed(side).await;
        assert_eq!(got, b"", "the {name} got bytes sent during the cut");
    }
    // The connection made during the cut never reached the server: the
    // next one it accepts is the one made after the restore.
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    after.write_all(b"after").await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"after");
    server.write_all(b"flows").await.unwrap();
    assert_eq!(read_exactly(&mut after, 5).await, b"flows");
    assert_eq!(
        proxy.counts(),
        Counts {
            accepted: 3,
            ..expected
        }
    );
}

/// kubernetes-validate as tests/run.sh installs it.
fn kubernetes_validate() -> std::path::PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set");
    let venv = cache.join("lemonade-tests/kubernetes-validate/bin");
    let tool = venv.join("kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run tests/run.sh, which installs it",
        tool.display()
    );
    tool
}

fn kubernetes_manifests() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// The manifests validate offline against an older and the newest
/// Kubernetes the validator knows, strictly (no unknown fields), and every
/// document is one it has a schema for.
#[test]
fn kubernetes_manifests_are_valid() {
    let tool = kubernetes_validate();
    let files = kubernetes_manifests();
    let documents: usize = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).expect("manifest");
            text.lines()
                .filter(|line| line.starts_with("kind: "))
                .count()
        })
        .sum();
    for version in ["1.29.0", "1.37.0"] {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .expect("run kubernetes-validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {version}:\n{report}");
        let passed: Vec<&str> = report
            .lines()
            .filter_map(|line| line.split(" passed for resource ").nth(1))
            .filter_map(|rest| rest.split(' ').next())
            .collect();
        assert_eq!(passed.len(), documents, "Kubernetes {version}:\n{report}");
        for resource in [
            "deployment/lemonade",
            "service/lemonade",
            "persistentvolumeclaim/lemonade-shared",
            "secret/lemonade-keys",
            "secret/lemonade-database",
        ] {
            assert!(passed.contains(&resource), "{resource} missing:\n{report}");
        }
    }
}

/// Every document of the manifests, as JSON (read by the PyYAML that
/// kubernetes-validate brings along).
fn kubernetes_documents() -> Vec<serde_json::Value> {
    let python = kubernetes_validate().with_file_name("python3");
    let load = "import json, sys, yaml\n\
                docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
                print(json.dumps(docs))";
    let out = Command::new(python)
        .args(["-c", load])
        .args(kubernetes_manifests())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifests as JSON")
}

/// What the schema cannot see: the Deployment's references name objects
/// of the set, the keys and the shared volume are mounted where the node's
/// environment says, and the probes and the Service point at the API.
#[test]
fn kubernetes_manifests_fit_together() {
    let docs = kubernetes_documents();
    let named = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let deployment = named("Deployment", "lemonade");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |name: &str| {
        let var = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name);
        var.unwrap_or_else(|| panic!("no {name}")).clone()
    };
    let mount = |volume: &str| {
        let mounts = container["volumeMounts"].as_array().unwrap();
        let found = mounts.iter().find(|m| m["name"] == volume);
        found
            .unwrap_or_else(|| panic!("{volume} not mounted"))
            .clone()
    };
    let volume = |name: &str| {
        let volumes = pod["volumes"].as_array().unwrap();
        volumes.iter().find(|v| v["name"] == name).unwrap().clone()
    };

    let keys = named(
        "Secret",
        volume("keys")["secret"]["secretName"].as_str().unwrap(),
    );
    assert!(keys["data"]["master.key"].is_string() && keys["data"]["vapid.pk8"].is_string());
    assert_eq!(
        mount("keys")["mountPath"],
        env("LEMONADE_DATA_DIR")["value"]
    );
    assert_eq!(mount("keys")["readOnly"], true);
    let claim = volume("shared")["persistentVolumeClaim"]["claimName"].clone();
    let shared = named("PersistentVolumeClaim", claim.as_str().unwrap());
    assert_eq!(shared["spec"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(
        mount("shared")["mountPath"],
        env("LEMONADE_STORE_SHARED_DIR")["value"]
    );
    let url = &env("LEMONADE_STORE_POSTGRES_URL")["valueFrom"]["secretKeyRef"];
    let database = named("Secret", url["name"].as_str().unwrap());
    assert!(database["stringData"][url["key"].as_str().unwrap()].is_string());
    assert_eq!(env("LEMONADE_STORE_BACKEND")["value"], "postgres");
    let node_id = &env("LEMONADE_CLUSTER_NODE_ID")["valueFrom"]["fieldRef"]["fieldPath"];
    assert_eq!(node_id, "metadata.name");

    assert_eq!(env("LEMONADE_LISTEN")["value"], "0.0.0.0:8080");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let service = named("Service", "lemonade");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"],
        container["ports"][0]["name"]
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service selects the pods");
    }
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30);
}

/// The variables `deploy/cluster.sh` gives each node, with a value of the
/// kind it gives.
const CLUSTER_SH_ENV: &[(&str, &str)] = &[
    ("LEMONADE_LISTEN", "127.0.0.1:8081"),
    ("LEMONADE_DATA_DIR", "/tmp/cluster-data/node1"),
    (
        "LEMONADE_STORE_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:55432/lemonade",
    ),
    ("LEMONADE_STORE_SHARED_DIR", "/tmp/cluster-data/shared"),
    ("LEMONADE_CLUSTER_NODE_ID", "node1"),
    ("LEMONADE_LOG_FORMAT", "text"),
];

fn load_config(file: Option<&Path>, env: &[(&str, &str)]) -> Config {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load(file, env).unwrap_or_else(|e| panic!("{e}"))
}

/// A node started by `deploy/cluster.sh` (the example file and the
/// script's variables) and a pod of the Deployment (its variables alone)
/// load as cluster nodes: every name is a configuration key and every
/// value passes validation.
#[test]
fn cluster_configurations_in_deploy_load() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let script = std::fs::read_to_string(deploy.join("cluster.sh")).expect("cluster.sh");
    let mut names: Vec<&str> = script
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("LEMONADE_"))
        .collect();
    names.sort();
    names.dedup();
    let mut known: Vec<&str> = CLUSTER_SH_ENV.iter().map(|(name, _)| *name).collect();
    known.sort();
    assert_eq!(names, known, "the variables cluster.sh sets");
    let example = deploy.join("cluster.example.toml");
    let node = load_config(Some(&example), CLUSTER_SH_ENV);
    assert!(node.cluster_mode());
    assert_eq!(node.cluster.node_id, "node1");
    assert_eq!(node.shared_dir(), Path::new("/tmp/cluster-data/shared"));
    let alone = load_config(Some(&example), &[]);
    assert_eq!(alone.shared_dir(), Path::new("/var/lib/lemonade-shared"));

    let container = kubernetes_documents()
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment")["spec"]["template"]["spec"]["containers"][0]
        .clone();
    let pod_env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            let value = match var["value"].as_str() {
                Some(value) => value,
                // What the Secret and the downward API would give.
                None if var["name"] == "LEMONADE_CLUSTER_NODE_ID" => "lemonade-7d4b9c8f6-x2x9q",
                None => "postgres://lemonade:secret@db.example.internal/lemonade",
            };
            (var["name"].as_str().unwrap().to_owned(), value.to_owned())
        })
        .collect();
    let pod = Config::load(None, pod_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(pod.cluster_mode());
    assert_eq!(pod.cluster.node_id, "lemonade-7d4b9c8f6-x2x9q");
}
