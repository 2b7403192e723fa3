//! The `lemonade` command: parses arguments, loads the configuration,
//! installs signal handlers and runs the gateway.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use lemonade::config::Config;
use lemonade::keys::{MASTER_KEY_FILE, VAPID_KEY_FILE};

/// jemalloc instead of the system allocator: the push path allocates and
/// frees many small buffers per notification (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "lemonade", version, about = "Push mail gateway for phones")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve {
        /// TOML configuration file; every key can be overridden by LEMONADE_* variables.
        #[arg(long, env = "LEMONADE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (defaults, file and environment) and exit.
    Config {
        #[arg(long, env = "LEMONADE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write a fresh master.key and vapid.pk8 (mode 0600) into DIR for a new
    /// cluster, and print their fingerprints. Never replaces a key.
    Keygen {
        /// Directory for the two files; created (mode 0700) if missing.
        dir: PathBuf,
    },
    /// Copy a single gateway's store (accounts, tokens, devices, cursors,
    /// queued pushes, send settings) into an empty PostgreSQL database for
    /// cluster mode. Stop the gateway first.
    Migrate {
        /// The gateway's data_dir (its store is in db/, its keys beside it).
        #[arg(long)]
        from: PathBuf,
        /// The target database: postgres://user:password@host:port/database
        #[arg(long)]
        to: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (print_only, file) = match cli.command {
        None => (false, None),
        Some(Command::Serve { config }) => (false, config),
        Some(Command::Config { config }) => (true, config),
        Some(Command::Keygen { dir }) => return keygen(&dir),
        Some(Command::Migrate { from, to }) => return migrate(&from, &to),
    };
    let config = Config::load(file.as_deref(), std::env::vars()).context("configuration")?;
    if print_only {
        let mut printed = config.clone();
        printed.store.postgres_url = config.store.postgres_url_redacted();
        print!(
            "{}",
            toml::to_string(&printed).context("printing configuration")?
        );
        return Ok(());
    }
    lemonade::logging::init(&config)?;
    match lemonade::limits::raise_open_files() {
        Ok(limits) => {
            tracing::info!(soft = limits.soft, hard = limits.hard, "open files limit")
        }
        Err(e) => tracing::warn!(error = %e, "reading the open files limit"),
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(serve(config))
}

fn keygen(dir: &Path) -> anyhow::Result<()> {
    let keys = lemonade::keys::generate(dir)?;
    println!(
        "wrote {MASTER_KEY_FILE} and {VAPID_KEY_FILE} in {}",
        dir.display()
    );
    println!("master key fingerprint: {}", keys.master_key_fingerprint);
    println!("VAPID key fingerprint: {}", keys.vapid_fingerprint);
    println!("VAPID public key: {}", keys.vapid_public_key);
    Ok(())
}

fn migrate(from: &Path, to: &str) -> anyhow::Result<()> {
    use lemonade::store::migrate;
    // Before the database is touched: refuses at once (after a short wait)
    // when a gateway still runs on the store.
    let source = migrate::open_source(from)?;
    // The database connection's TLS, as `lemonade::run` sets it up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let counts = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async {
            let target = lemonade::store::PgStore::connect(lemonade::store::PgOptions::new(to))
                .await
                .context("connecting to the target database")?;
            anyhow::Ok(migrate::migrate(from, &source, &target).await?)
        })?;
    print_migrated(from, &counts);
    Ok(())
}

fn print_migrated(from: &Path, counts: &lemonade::store::migrate::Counts) {
    println!("copied from {} into the database:", from.display());
    println!("accounts: {}", counts.accounts);
    println!("tokens: {}", counts.tokens);
    println!("devices: {}", counts.devices);
    println!("cursors: {}", counts.cursors);
    println!("windows of pushed mail: {}", counts.pushed_windows);
    println!("queued pushes: {}", counts.queued_pushes);
    println!("send settings: {}", counts.send_settings);
    println!(
        "not copied: {} unfinished sends, {} uploads (their files are local to this machine: \
         let sends finish on the single gateway before migrating)",
        counts.unfinished_sends, counts.uploads
    );
    if counts.skipped > 0 {
        println!(
            "skipped: {} records of deleted accounts or devices",
            counts.skipped
        );
    }
    println!(
        "Now copy {MASTER_KEY_FILE} and {VAPID_KEY_FILE} from {} into the data_dir of every \
         node: they are the cluster's keys (the database records their fingerprints, and a \
         node with other keys refuses to start).",
        from.display()
    );
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        // First: logging must not be able to keep the gateway running.
        signal_token.cancel();
        tracing::info!("shutting down");
    });
    lemonade::run(config, listener, shutdown).await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
