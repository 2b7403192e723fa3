//! A private PostgreSQL server for the test process, on a free loopback
//! port, in a temporary directory; each test takes an empty database of its
//! own.
//!
//! ```ignore
//! let pg = support::postgres::server().await;
//! let url = pg.fresh_database().await; // postgres://postgres@127.0.0.1:PORT/test_1
//! ```
//!
//! The server is started on first use and shared by every test of the
//! binary. Unlike a Dovecot, which each test owns and stops on drop, a
//! shared server is never dropped, so its cleanup is left to a watchdog: a
//! small shell child, in a process group of its own, that blocks reading a
//! pipe only this process holds open. When this process ends, however it
//! ends (a `kill -9` or a signal to the test run included), the pipe closes;
//! the watchdog then stops PostgreSQL (`pg_ctl stop -m immediate`) and
//! removes the directory.
//!
//! PostgreSQL refuses to run as root, so as root its programs run as the
//! `postgres` system user (the Debian package creates it); the clients
//! (`psql`) connect with trust authentication, which is fine on loopback.
//! `fsync` is off: these databases are thrown away.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// Connections the server accepts: several gateway nodes, each with a pool.
const MAX_CONNECTIONS: u32 = 300;

/// Ports tried before giving up when the chosen one is taken meanwhile.
const START_ATTEMPTS: usize = 5;

static SERVER: OnceLock<PostgresServer> = OnceLock::new();

/// The binary's PostgreSQL server, started on the first call.
pub async fn server() -> &'static PostgresServer {
    if let Some(server) = SERVER.get() {
        return server;
    }
    tokio::task::spawn_blocking(server_blocking)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// [`server`] for code outside a runtime.
pub fn server_blocking() -> &'static PostgresServer {
    SERVER.get_or_init(PostgresServer::start)
}

/// A running server; it lives as long as the test process.
pub struct PostgresServer {
    /// PostgreSQL's programs (`/usr/lib/postgresql/VERSION/bin`).
    bin: PathBuf,
    /// Holds the data directory, the socket and the log.
    root: PathBuf,
    port: u16,
    /// Numbers the databases of [`PostgresServer::fresh_database`]; held
    /// while one is created, as two creations from one template may clash.
    databases: tokio::sync::Mutex<u32>,
    _watchdog: Watchdog,
}

/// Stops the server and removes its directory once this process is gone.
struct Watchdog {
    /// Never waited for: it outlives this process.
    _child: Child,
    /// The write end of its pipe: never written, only held.
    _pipe: ChildStdin,
}

impl PostgresServer {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's TCP address (for a proxy in front of it).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }

    /// Creates a new, empty database and returns its URL,
    /// `postgres://postgres@127.0.0.1:PORT/test_N`.
    pub async fn fresh_database(&self) -> String {
        let mut count = self.databases.lock().await;
        *count += 1;
        let name = format!("test_{count}");
        self.psql(&self.url("postgres"), &format!("CREATE DATABASE {name}"))
            .await;
        self.url(&name)
    }

    /// Runs `sql` with `psql` against the database at `url` and returns
    /// what it printed (unaligned, tuples only, trimmed); panics with
    /// psql's message if a statement fails.
    pub async fn psql(&self, url: &str, sql: &str) -> String {
        let out = tokio::process::Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} on {url} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Makes the directory, arms the watchdog, runs initdb and starts the
    /// server; returns once it accepts connections.
    fn start() -> PostgresServer {
        let bin = bin_dir();
        let root = make_root();
        let pg_ctl = bin.join("pg_ctl");
        let data = root.join("data");
        let watchdog = arm_watchdog(&root, &pg_ctl, &data);
        run_as_postgres(
            &root,
            Command::new(bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "--no-sync"])
                .args(["-E", "UTF8", "--locale=C"]),
        );
        append_settings(&data, &root);
        let port = start_on_free_port(&root, &pg_ctl, &data);
        PostgresServer {
            bin,
            root,
            port,
            databases: tokio::sync::Mutex::new(0),
            _watchdog: watchdog,
        }
    }
}

/// The newest installed PostgreSQL's programs.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "no PostgreSQL server in /usr/lib/postgresql/*/bin: run tests/run.sh, which installs it",
    )
}

/// A fresh directory owned by the user PostgreSQL runs as.
fn make_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "lemonade-pg-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    fs::create_dir(&root).expect("PostgreSQL temp dir");
    if let Some((uid, gid)) = postgres_user() {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).expect("chown PostgreSQL dir");
    }
    root
}

/// Starts the watchdog that stops the server and removes `root` once this
/// process is gone.
fn arm_watchdog(root: &Path, pg_ctl: &Path, data: &Path) -> Watchdog {
    use std::os::unix::process::CommandExt;
    // `read` returns at end of file: when the last holder of the pipe's
    // write end, this process, has exited. Rust opens pipes close-on-exec,
    // so no other child (PostgreSQL included) holds it.
    let script = r#"root=$1; shift; read -r _; "$@" >/dev/null 2>&1; rm -rf "$root""#;
    let mut child = Command::new("sh")
        .args(["-c", script, "lemonade-pg-watchdog"])
        .arg(root)
        .args(as_postgres_prefix())
        .arg(pg_ctl)
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "stop"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the test run's process group: a Ctrl-C to the run must
        // not end the watchdog before it cleans up.
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog");
    let pipe = child.stdin.take().expect("watchdog stdin");
    Watchdog {
        _child: child,
        _pipe: pipe,
    }
}

/// Settings beyond initdb's: where to listen, and speed over durability.
fn append_settings(data: &Path, root: &Path) {
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("open postgresql.conf");
    write!(
        conf,
        "\n# Test harness\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         max_connections = {MAX_CONNECTIONS}\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\n",
        root.display()
    )
    .expect("write postgresql.conf");
}

/// Starts the server on a free port; tries another port if the chosen one
/// was taken between choosing and binding.
fn start_on_free_port(root: &Path, pg_ctl: &Path, data: &Path) -> u16 {
    let log = root.join("postgres.log");
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let status = as_postgres(root)
            .arg(pg_ctl)
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port}"))
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl");
        if status.success() {
            return port;
        }
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("could not bind") || text.contains("already in use"),
            "PostgreSQL did not start:\n{text}"
        );
    }
    panic!(
        "PostgreSQL found no free port in {START_ATTEMPTS} attempts:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Runs `command` as the PostgreSQL user; panics with its output if it fails.
fn run_as_postgres(root: &Path, command: &mut Command) {
    let mut full = as_postgres(root);
    full.arg(command.get_program()).args(command.get_args());
    let out = full.stdin(Stdio::null()).output().expect("run as postgres");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}{}",
        command.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command that runs its arguments as the PostgreSQL user, in `root`.
fn as_postgres(root: &Path) -> Command {
    let mut prefix = as_postgres_prefix().into_iter();
    let mut command = Command::new(prefix.next().unwrap_or_else(|| "env".into()));
    command.args(prefix).current_dir(root);
    command
}

/// `runuser -u postgres --` as root; nothing otherwise (PostgreSQL runs as
/// any user but root).
fn as_postgres_prefix() -> Vec<String> {
    if postgres_user().is_some() {
        ["runuser", "-u", "postgres", "--"]
            .map(String::from)
            .to_vec()
    } else {
        Vec::new()
    }
}

/// The `postgres` user's uid and gid when this process is root.
fn postgres_user() -> Option<(u32, u32)> {
    static USER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *USER.get_or_init(|| {
        if lookup_id("-u", None)? != 0 {
            return None;
        }
        let uid = lookup_id("-u", Some("postgres"));
        let gid = lookup_id("-g", Some("postgres"));
        Some((
            uid.expect("no postgres system user: run tests/run.sh, which installs PostgreSQL"),
            gid.expect("postgres group"),
        ))
    })
}

fn lookup_id(flag: &str, user: Option<&str>) -> Option<u32> {
    let out = Command::new("id").arg(flag).args(user).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A loopback port free right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
