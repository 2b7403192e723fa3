//! Lemonade: a push mail gateway for phones.
//!
//! It watches users' IMAP mailboxes (IDLE, NOTIFY) and sends an encrypted
//! Web Push to their phones when new mail arrives, and offers phones a small
//! HTTP API. [`run`] is the whole gateway: it opens the store, starts the
//! push delivery actor and one watcher per account, and serves the API on
//! the given listener until the shutdown token is cancelled.
//!
//! ```text
//!  phones ──HTTP──▶ api ──▶ store (sled) ◀── watch (one actor per account) ◀──IMAP── mail servers
//!                              │                      │ wake
//!                              └────────▶ notify (delivery actor) ──Web Push──▶ push services
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod backoff;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod error;
pub mod error_code;
#[doc(hidden)]
pub mod fuzzing;
pub mod imap;
pub mod keys;
pub mod lease;
pub mod limits;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod oauth;
pub mod proto;
pub mod public_ip;
pub mod read;
pub mod sasl;
pub mod send;
pub mod smtp;
pub mod startup;
pub mod store;
pub mod text;
pub mod watch;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{ClusterNode, Timing};
use crate::config::Config;
use crate::lease::LeaseGate;
use crate::metrics::Metrics;
use crate::net::TlsConnector;
use crate::notify::{DeliveryLimits, DeliveryQueue, PushClient, PushClientConfig, VapidSigner};
use crate::watch::{
    HostLimiter, PipeliningHosts, Supervisor, WatchContext, WatchControl, WatchStates,
};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Seal(#[from] store::SealError),
    #[error("this node's {0} differs from the one the cluster's other nodes use: copy the cluster's keys into data_dir (see `lemonade keygen`)")]
    KeyMismatch(String),
    #[error(transparent)]
    Vapid(#[from] notify::vapid::VapidError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Push(#[from] notify::client::PushClientError),
    #[error(transparent)]
    OAuth(#[from] oauth::OAuthError),
    #[error(transparent)]
    Transport(#[from] notify::TransportError),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// Milliseconds since the Unix epoch, for records that outlive the process.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the gateway on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // Only fails when a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Arc::new(config);
    crate::imap::InflightBudget::global().set_limit(config.upstream.max_inflight_bytes);
    let data_dir = &config.data_dir;
    create_private_dir(data_dir).map_err(|source| RunError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let startup::Keys { sealer, vapid } = startup::keys(&config)?;
    let vapid_public_key: Arc<str> = vapid.public_key_b64url().into();
    let fingerprints = startup::fingerprints(&sealer, &vapid);
    let opened = startup::store(&config, &fingerprints).await?;
    let store = opened.store;
    let metrics = Arc::new(Metrics {
        store_flush: opened.flush_times,
        ..Metrics::default()
    });
    let tls = TlsConnector::new(config.upstream.extra_ca_file.as_deref())?;
    let tls = if config.upstream.allow_private_hosts {
        tls
    } else {
        tls.public_only()
    };
    let (refused_tx, refused_rx) = tokio::sync::mpsc::channel(1024);
    let tokens = Arc::new(
        oauth::TokenBroker::new(oauth::providers(&config)?, store.clone(), sealer.clone())
            .on_refused(refused_tx),
    );
    let credentials = Arc::new(credentials::Credentials::new(sealer.clone(), tokens));
    let signer = Arc::new(VapidSigner::new(vapid, &config.push.vapid_subject)?);
    let push_client = Arc::new(PushClient::new(
        PushClientConfig {
            allow_private_endpoints: config.push.allow_private_endpoints,
            request_timeout: Duration::from_secs(config.push.request_timeout_secs),
            connect_timeout: Duration::from_secs(config.upstream.connect_timeout_secs),
            extra_ca_file: config.push.extra_ca_file.clone(),
        },
        signer,
    )?);
    // Web Push, and APNs and FCM where configured: one pipeline.
    let push_client: Arc<dyn notify::PushSender> =
        Arc::new(notify::Transports::new(&config, push_client)?);

    let tracker = TaskTracker::new();
    // In a cluster the node's lease opens the gate; alone it is always open.
    let (lease, gate) = LeaseGate::new();
    let gate = match &opened.cluster {
        Some(_) => gate,
        None => LeaseGate::always(),
    };
    let (devices_removed, mut removed_rx) = tokio::sync::mpsc::channel::<String>(1024);
    let (notifier, delivery) = DeliveryQueue {
        store: store.clone(),
        client: push_client.clone(),
        metrics: metrics.clone(),
        urgency: config.push.urgency,
        limits: DeliveryLimits {
            total: config.push.concurrency,
            per_account: config.push.concurrency_per_account,
            per_service: config.push.concurrency_per_service,
            timed_out: config.push.concurrency_timed_out,
        },
        devices_removed,
        gate: gate.clone(),
        poll: opened
            .cluster
            .as_ref()
            .map(|_| Duration::from_secs(config.cluster.push_poll_secs)),
    }
    .start(shutdown.child_token());
    tracker.spawn(delivery);

    let states = WatchStates::default();
    let ctx = Arc::new(WatchContext {
        config: config.clone(),
        store: store.clone(),
        credentials: credentials.clone(),
        tls: tls.clone(),
        notifier,
        states: states.clone(),
        metrics: metrics.clone(),
        limiter: HostLimiter::new(config.upstream.max_connects_per_host),
        pipelining: PipeliningHosts::new(Duration::from_secs(config.watch.pipelining_retry_secs)),
        pusher: push_client.clone(),
    });
    let supervisor = Supervisor::new(ctx, shutdown.child_token(), tracker.clone());
    let (watchers, node): (Arc<dyn WatchControl>, _) = match &opened.cluster {
        Some(pg) => {
            let node = ClusterNode::new(
                pg.clone(),
                supervisor.clone(),
                Timing::of(&config.cluster),
                lease,
            );
            node.spawn(&tracker, shutdown.child_token());
            (node.clone(), Some(node))
        }
        None => {
            let accounts = supervisor.start_all().await?;
            tracing::info!(accounts, "watching every account");
            (Arc::new(supervisor.clone()), None)
        }
    };
    let removed_to = watchers.clone();
    let stop = shutdown.child_token();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                removed = removed_rx.recv() => match removed {
                    Some(account_id) => removed_to.devices_changed(&account_id).await,
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
        }
    });
    tracker.spawn(tell_refused_accounts(
        refused_rx,
        store.clone(),
        push_client.clone(),
        config.push.ttl_secs,
        shutdown.child_token(),
    ));
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "gateway started");

    let pool = read::SessionPool::new(
        config.clone(),
        store.clone(),
        credentials.clone(),
        tls.clone(),
    );
    tracker.spawn(pool.reaper(shutdown.child_token()));
    let outbox = send::Outbox::new(
        send::SendContext {
            config: config.clone(),
            store: store.clone(),
            credentials: credentials.clone(),
            tls: tls.clone(),
            spool_dir: config.shared_dir().join("outbox"),
            burl: send::plan::BurlMemory::default(),
            gate: gate.clone(),
        },
        tracker.clone(),
        shutdown.child_token(),
    );
    let resumed = outbox.resume_all().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resuming unfinished sends");
    }
    if config.cluster_mode() {
        let every = Duration::from_secs(config.cluster.rebalance_secs);
        tracker.spawn(
            outbox
                .clone()
                .take_over_orphans(every, shutdown.child_token()),
        );
    }
    if !config.cluster_mode() {
        // In a cluster another node may be writing an upload right now.
        let removed = api::remove_unnamed_upload_files(store.as_ref(), data_dir).await?;
        if removed > 0 {
            tracing::info!(removed, "removed upload files no record named");
        }
    }

    let app = api::router(api::AppState {
        config: config.clone(),
        store: store.clone(),
        signins: Arc::new(oauth::SignIns::new(
            store.clone(),
            sealer.clone(),
            config.oauth.state_ttl_secs,
            config.oauth.grant_ttl_secs,
        )),
        sealer,
        credentials,
        tls,
        watchers,
        pusher: push_client,
        ready: gate,
        cluster: opened.cluster.clone(),
        node_id: opened
            .cluster
            .as_ref()
            .map(|_| config.cluster.node_id.clone()),
        outbox,
        states,
        metrics,
        vapid_public_key,
        pool,
        login_guard: Arc::new(login_guard(&config, opened.cluster.clone())),
        registrations: Arc::new(api::RegistrationLimit::new(
            config.api.accounts_per_client,
            Duration::from_secs(config.api.accounts_per_client_window_secs),
        )),
        locks: Arc::default(),
        upload_reservations: Arc::default(),
    });
    api::serve::serve(
        listener,
        app,
        api::serve::ServeLimits {
            header_read: Duration::from_secs(config.api.header_read_timeout_secs),
            idle: Duration::from_secs(config.api.idle_timeout_secs),
            drain: Duration::from_secs(config.api.request_timeout_secs),
        },
        shutdown.clone(),
    )
    .await;

    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some watchers did not stop in time");
    }
    if let Some(node) = node {
        node.leave().await;
    }
    store.flush().await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Sends each account whose OAuth grant was refused its one `reauth` push.
async fn tell_refused_accounts(
    mut refused: tokio::sync::mpsc::Receiver<String>,
    store: Arc<dyn store::Store>,
    pusher: Arc<dyn notify::PushSender>,
    ttl_secs: u32,
    stop: CancellationToken,
) {
    loop {
        let account_id = tokio::select! {
            Some(account_id) = refused.recv() => account_id,
            _ = stop.cancelled() => return,
            else => return,
        };
        let plaintext = notify::payload::reauth(&account_id);
        notify::tell_devices(
            store.as_ref(),
            pusher.as_ref(),
            ttl_secs,
            &account_id,
            &plaintext,
        )
        .await;
    }
}

/// Counts refused registration logins: in a cluster, in the database.
fn login_guard(config: &Config, cluster: Option<Arc<store::PgStore>>) -> api::LoginGuard {
    let guard = api::LoginGuard::new(
        config.api.login_failures_allowed,
        config.api.client_failures_allowed,
        Duration::from_secs(config.api.login_failure_window_secs),
    );
    match cluster {
        Some(store) => guard.shared(store),
        None => guard,
    }
}

pub(crate) fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
