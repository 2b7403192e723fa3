//! What the gateway opens before it starts: its keys and its store.
//!
//! Alone (sled), a gateway makes its keys on first start. In a cluster
//! (PostgreSQL) every node must hold the same keys, made once with
//! `lemonade keygen` and copied to each node's `data_dir`: a node never
//! makes them, refuses to start without them, and refuses to start when
//! they differ from the cluster's (their fingerprints are kept in the
//! database).

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Timing;
use crate::config::Config;
use crate::keys::{MASTER_KEY_FILE, VAPID_KEY_FILE};
use crate::metrics::Histogram;
use crate::notify::VapidKey;
use crate::store::{PgOptions, PgStore, Sealer, SledStore, Store, StoreError};
use crate::RunError;

/// The keys the gateway runs with.
pub struct Keys {
    pub sealer: Arc<Sealer>,
    pub vapid: VapidKey,
}

/// Loads the keys from `data_dir`, making them when alone.
pub fn keys(config: &Config) -> Result<Keys, RunError> {
    let dir = &config.data_dir;
    let (sealer, vapid) = if config.cluster_mode() {
        (
            Sealer::load(&dir.join(MASTER_KEY_FILE))?,
            VapidKey::load(&dir.join(VAPID_KEY_FILE))?,
        )
    } else {
        (
            Sealer::load_or_create(&dir.join(MASTER_KEY_FILE))?,
            VapidKey::load_or_generate(&dir.join(VAPID_KEY_FILE))?,
        )
    };
    Ok(Keys {
        sealer: Arc::new(sealer),
        vapid,
    })
}

/// The store the gateway runs on.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// In cluster mode: the same store, with what only PostgreSQL does.
    pub cluster: Option<Arc<PgStore>>,
    /// How long sled's flushes take (empty on PostgreSQL).
    pub flush_times: Arc<Histogram>,
}

/// The keys' names and fingerprints, which every node of a cluster must share.
pub fn fingerprints(sealer: &Sealer, vapid: &VapidKey) -> [(&'static str, String); 2] {
    [
        (MASTER_KEY_FILE, sealer.fingerprint().to_string()),
        (VAPID_KEY_FILE, vapid.fingerprint()),
    ]
}

/// Opens sled in `data_dir/db`, or joins the cluster on PostgreSQL after
/// checking that its keys (`fingerprints`) are the cluster's.
pub async fn store(
    config: &Config,
    fingerprints: &[(&'static str, String)],
) -> Result<Opened, RunError> {
    if !config.cluster_mode() {
        // Opening may wait for a previous instance's file lock: off the runtime.
        let db_dir = config.data_dir.join("db");
        let window = Duration::from_millis(config.store.commit_window_ms);
        let sled = tokio::task::spawn_blocking(move || {
            SledStore::open_with_commit_window(&db_dir, window)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        let flush_times = sled.flush_times();
        return Ok(Opened {
            store: Arc::new(sled),
            cluster: None,
            flush_times,
        });
    }
    let store = PgStore::connect(pg_options(config)).await?;
    let named: Vec<(&str, &str)> = fingerprints
        .iter()
        .map(|(name, fp)| (*name, fp.as_str()))
        .collect();
    if let Some(name) = store.check_keys(&named).await? {
        return Err(RunError::KeyMismatch(name));
    }
    let timing = Timing::of(&config.cluster);
    let node = store.join(&config.cluster.node_id, timing.ttl).await?;
    tracing::info!(node = %node.id, incarnation = node.incarnation, "joined the cluster");
    let takeover = Duration::from_secs(config.cluster.send_takeover_secs);
    let store = Arc::new(store.for_node(node).with_send_takeover(takeover));
    Ok(Opened {
        store: store.clone(),
        cluster: Some(store),
        flush_times: Arc::default(),
    })
}

/// How the store reaches PostgreSQL, from the configuration.
pub fn pg_options(config: &Config) -> PgOptions {
    PgOptions {
        url: config.store.postgres_url.clone(),
        pool_size: config.store.postgres_pool_size,
        ca_file: config.store.postgres_ca_file.clone(),
        ..PgOptions::new(&config.store.postgres_url)
    }
}
