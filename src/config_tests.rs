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
