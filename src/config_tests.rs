//! Unit tests of the configuration: defaults, file, environment, validation.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_file_and_no_env() {
    let config = Config::load(None, env(&[("PATH", "/bin")])).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert!(!config.push.allow_private_endpoints);
    assert!(!config.upstream.allow_plaintext);
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lemonade.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:9000\"\n[push]\nttl_secs = 60\n[watch.idle_refresh_by_host]\n\"imap.example\" = 300\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[
            ("LEMONADE_LISTEN", "127.0.0.1:9100"),
            ("LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS", "true"),
            ("LEMONADE_UPSTREAM_ALLOW_PLAINTEXT", "true"),
            ("LEMONADE_DATA_DIR", "/var/lib/lemonade"),
            ("LEMONADE_UPSTREAM_EXTRA_CA_FILE", file.to_str().unwrap()),
            ("LEMONADE_API_TRUSTED_PROXIES", r#"["127.0.0.1", "::1"]"#),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.api.trusted_proxies,
        [
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(config.listen.port(), 9100);
    assert_eq!(config.push.ttl_secs, 60);
    assert!(config.push.allow_private_endpoints);
    assert!(config.upstream.allow_plaintext);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/lemonade"));
    assert_eq!(
        config.upstream.extra_ca_file.as_deref(),
        Some(file.as_path())
    );
    assert_eq!(
        config.idle_refresh_for("IMAP.example"),
        Duration::from_secs(300)
    );
    assert_eq!(
        config.idle_refresh_for("imap.gmail.com"),
        Duration::from_secs(540)
    );
    assert_eq!(config.idle_refresh_for("other"), Duration::from_secs(1680));
}

#[test]
fn bad_input_is_named() {
    let err = Config::load(None, env(&[("LEMONADE_LISTEN", "nonsense")])).unwrap_err();
    assert!(err.to_string().contains("invalid"), "{err}");
    let err = Config::load(None, env(&[("LEMONADE_PUSH_TTL_SECS", "soon")])).unwrap_err();
    assert!(err.to_string().contains("LEMONADE_PUSH_TTL_SECS"), "{err}");
    let err = Config::load(None, env(&[("LEMONADE_NO_SUCH", "1")])).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownEnv(_)));
    let err = Config::load(None, env(&[("LEMONADE_PUSH_URGENCY", "urgent")])).unwrap_err();
    assert!(err.to_string().contains("urgency"), "{err}");
    let err = Config::load(None, env(&[("LEMONADE_WATCH_IDLE_REFRESH_SECS", "3600")])).unwrap_err();
    assert!(err.to_string().contains("RFC 2177"), "{err}");
    let err =
        Config::load(None, env(&[("LEMONADE_PUSH_MAX_DEVICES_PER_ACCOUNT", "0")])).unwrap_err();
    assert!(
        err.to_string().contains("push.max_devices_per_account"),
        "{err}"
    );
    let err = Config::load(
        None,
        env(&[("LEMONADE_PUSH_EXTRA_CA_FILE", "/no/such/ca.pem")]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("push.extra_ca_file"), "{err}");
    let err = Config::load(None, env(&[("LEMONADE_API_LOGIN_FAILURES_ALLOWED", "0")])).unwrap_err();
    assert!(
        err.to_string().contains("api.login_failures_allowed"),
        "{err}"
    );
    let err = Config::load(
        None,
        env(&[("LEMONADE_UPSTREAM_MAX_INFLIGHT_BYTES", "1000")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("upstream.max_inflight_bytes"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[push]\nno_such_key = 1\n").unwrap();
    let err = Config::load(Some(&file), env(&[])).unwrap_err();
    assert!(err.to_string().contains("no_such_key"), "{err}");
    let missing = dir.path().join("missing.toml");
    assert!(matches!(
        Config::load(Some(&missing), env(&[])),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn the_example_config_lists_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/lemonade.example.toml");
    let config = Config::load(Some(Path::new(example)), env(&[])).unwrap();
    assert_eq!(config, Config::default());
    let text = std::fs::read_to_string(example).unwrap();
    let value = toml::Value::try_from(Config::default()).unwrap();
    let mut keys = Vec::new();
    leaf_keys(&value, "", &mut keys);
    keys.extend(OPTIONAL_KEYS.iter().map(|k| k.to_string()));
    for key in keys {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(text.contains(leaf), "example config lacks {key}");
    }
}

#[test]
fn every_key_has_an_environment_name() {
    let value = toml::Value::try_from(Config::default()).unwrap();
    let mut keys = Vec::new();
    leaf_keys(&value, "", &mut keys);
    assert!(keys.contains(&"push.allow_private_endpoints".to_string()));
    assert!(keys.contains(&"watch.idle_refresh_by_host".to_string()));
    let config = Config::load(
        None,
        env(&[(
            "LEMONADE_WATCH_IDLE_REFRESH_BY_HOST",
            "{ \"a.example\" = 60 }",
        )]),
    )
    .unwrap();
    assert_eq!(config.watch.idle_refresh_by_host.len(), 1);
}

#[test]
fn api_limits_must_be_positive() {
    for (name, key) in [
        (
            "LEMONADE_API_ACCOUNTS_PER_CLIENT",
            "api.accounts_per_client",
        ),
        (
            "LEMONADE_API_IDLE_TIMEOUT_SECS",
            "api.header_read_timeout_secs",
        ),
        (
            "LEMONADE_API_HEADER_READ_TIMEOUT_SECS",
            "api.header_read_timeout_secs",
        ),
    ] {
        let err = Config::load(None, env(&[(name, "0")])).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

/// A valid cluster configuration's environment, plus `extra`.
fn cluster_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = env(&[
        ("LEMONADE_STORE_BACKEND", "postgres"),
        (
            "LEMONADE_STORE_POSTGRES_URL",
            "postgres://lemonade:hunter2@db.internal:5432/lemonade",
        ),
        ("LEMONADE_CLUSTER_NODE_ID", "node-1"),
    ]);
    pairs.extend(env(extra));
    pairs
}

#[test]
fn cluster_keys_have_defaults_and_environment_names() {
    let config = Config::load(None, env(&[])).unwrap();
    assert!(!config.cluster_mode());
    assert_eq!(config.store.backend, StoreBackend::Sled);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.shared_dir(), Path::new("./data"));
    assert!(!config.cluster.node_id.is_empty());
    assert_eq!(
        (
            config.cluster.lease_ttl_secs,
            config.cluster.lease_renew_secs
        ),
        (15, 5)
    );

    let config = Config::load(
        None,
        cluster_env(&[
            ("LEMONADE_LOG_FORMAT", "json"),
            ("LEMONADE_STORE_POSTGRES_POOL_SIZE", "4"),
            ("LEMONADE_STORE_SHARED_DIR", "/srv/shared"),
            ("LEMONADE_CLUSTER_LEASE_TTL_SECS", "30"),
            ("LEMONADE_CLUSTER_LEASE_RENEW_SECS", "10"),
            ("LEMONADE_CLUSTER_CLAIM_GRACE_SECS", "0"),
            ("LEMONADE_CLUSTER_REBALANCE_SECS", "7"),
            ("LEMONADE_CLUSTER_PUSH_POLL_SECS", "3"),
        ]),
    )
    .unwrap();
    assert!(config.cluster_mode());
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.store.postgres_pool_size, 4);
    assert_eq!(config.shared_dir(), Path::new("/srv/shared"));
    assert_eq!(config.cluster.node_id, "node-1");
    assert_eq!(
        (
            config.cluster.lease_ttl_secs,
            config.cluster.lease_renew_secs,
            config.cluster.claim_grace_secs,
            config.cluster.rebalance_secs,
            config.cluster.push_poll_secs
        ),
        (30, 10, 0, 7, 3)
    );
    assert_eq!(
        config.store.postgres_url_redacted(),
        "postgres://lemonade:***@db.internal:5432/lemonade"
    );
}

#[test]
fn postgres_needs_a_postgres_url_and_errors_never_show_it() {
    let url_error = |url: &str| {
        let err = Config::load(None, cluster_env(&[("LEMONADE_STORE_POSTGRES_URL", url)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.postgres_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    };
    url_error("");
    url_error("mysql://lemonade:hunter2@db/lemonade");
    url_error("lemonade:hunter2@db/lemonade");
    for url in [
        "postgresql://db.internal/lemonade?sslmode=require",
        "postgres:///lemonade?host=/run/postgresql",
    ] {
        let config =
            Config::load(None, cluster_env(&[("LEMONADE_STORE_POSTGRES_URL", url)])).unwrap();
        assert_eq!(config.store.postgres_url, url);
    }
    // The embedded store ignores the URL.
    Config::load(None, env(&[("LEMONADE_STORE_POSTGRES_URL", "nonsense")])).unwrap();
}

#[test]
fn store_and_cluster_numbers_are_checked() {
    for (name, value, key) in [
        (
            "LEMONADE_STORE_POSTGRES_POOL_SIZE",
            "0",
            "store.postgres_pool_size",
        ),
        (
            "LEMONADE_CLUSTER_LEASE_TTL_SECS",
            "0",
            "cluster.lease_ttl_secs",
        ),
        (
            "LEMONADE_CLUSTER_LEASE_RENEW_SECS",
            "0",
            "cluster.lease_renew_secs",
        ),
        (
            "LEMONADE_CLUSTER_REBALANCE_SECS",
            "0",
            "cluster.rebalance_secs",
        ),
        (
            "LEMONADE_CLUSTER_PUSH_POLL_SECS",
            "0",
            "cluster.push_poll_secs",
        ),
        // Two renewals must fit in one TTL: 2 * 5 >= 10.
        (
            "LEMONADE_CLUSTER_LEASE_TTL_SECS",
            "10",
            "cluster.lease_renew_secs",
        ),
        (
            "LEMONADE_STORE_POSTGRES_CA_FILE",
            "/no/such/ca.pem",
            "store.postgres_ca_file",
        ),
    ] {
        let err = Config::load(None, cluster_env(&[(name, value)])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key),
            "{name}={value}: {err}"
        );
    }
    let config = Config::load(
        None,
        cluster_env(&[("LEMONADE_CLUSTER_LEASE_TTL_SECS", "11")]),
    );
    assert_eq!(config.unwrap().cluster.lease_ttl_secs, 11);
}

#[test]
fn node_ids_are_short_plain_names_in_cluster_mode() {
    let too_long = "n".repeat(MAX_NODE_ID_LEN + 1);
    for bad in ["", "node 1", "node/1", "nœud", "a:b", too_long.as_str()] {
        let err =
            Config::load(None, cluster_env(&[("LEMONADE_CLUSTER_NODE_ID", bad)])).unwrap_err();
        assert!(
            err.to_string().contains("cluster.node_id"),
            "{bad:?}: {err}"
        );
    }
    let longest = "n".repeat(MAX_NODE_ID_LEN);
    for good in ["node-1", "gw_2.eu-west", "A", longest.as_str()] {
        let config =
            Config::load(None, cluster_env(&[("LEMONADE_CLUSTER_NODE_ID", good)])).unwrap();
        assert_eq!(config.cluster.node_id, good);
    }
    // A single node never shows its id: an odd host name does not stop it.
    Config::load(None, env(&[("LEMONADE_CLUSTER_NODE_ID", "")])).unwrap();
}

#[test]
fn cors_origins_must_be_origins() {
    let origins = |value: &str| Config::load(None, env(&[("LEMONADE_API_CORS_ORIGINS", value)]));
    let config = origins(r#"["https://mail.example.org", "http://localhost:5173"]"#).unwrap();
    assert_eq!(config.api.cors_origins.len(), 2);
    for bad in [
        r#"["https://mail.example.org/"]"#,
        r#"["https://mail.example.org/app"]"#,
        r#"["mail.example.org"]"#,
        r#"["*"]"#,
    ] {
        let err = origins(bad).unwrap_err().to_string();
        assert!(err.contains("api.cors_origins"), "{bad}: {err}");
    }
}

#[test]
fn oauth_providers_and_native_push_come_from_the_environment_too() {
    let config = Config::load(
        None,
        env(&[
            ("LEMONADE_OAUTH_PUBLIC_URL", "https://mail.example.org"),
            (
                "LEMONADE_OAUTH_PROVIDERS",
                r#"{google = {client_id = "id", client_secret = "secret"}}"#,
            ),
            ("LEMONADE_PUSH_FCM_BASE_URL", "https://fcm.example.org"),
        ]),
    )
    .unwrap();
    let providers = config.oauth.providers().unwrap();
    assert_eq!(providers["google"].imap.host, "imap.gmail.com");
    assert_eq!(config.push.fcm.base_url, "https://fcm.example.org");
    // Providers without a public URL, or an APNs key without its ids, are refused.
    let no_url = env(&[(
        "LEMONADE_OAUTH_PROVIDERS",
        r#"{google = {client_id = "id", client_secret = "s"}}"#,
    )]);
    let err = Config::load(None, no_url).unwrap_err().to_string();
    assert!(err.contains("oauth.public_url"), "{err}");
    let key = tempfile::NamedTempFile::new().unwrap();
    let path = key.path().to_str().unwrap();
    let err = Config::load(None, env(&[("LEMONADE_PUSH_APNS_KEY_FILE", path)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("push.apns.key_id"), "{err}");
}

#[test]
fn the_web_app_can_be_turned_off_or_served_from_a_folder() {
    assert!(Config::default().web.enabled);
    let config = Config::load(None, env(&[("LEMONADE_WEB_ENABLED", "false")])).unwrap();
    assert!(!config.web.enabled);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    let err = Config::load(None, env(&[("LEMONADE_WEB_DIR", folder)])).unwrap_err();
    assert!(err.to_string().contains("web.dir"), "{err}");
    std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
    let config = Config::load(None, env(&[("LEMONADE_WEB_DIR", folder)])).unwrap();
    assert_eq!(config.web.dir.as_deref(), Some(dir.path()));
}
