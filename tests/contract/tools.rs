//! The standard tools the contract tests run, where tests/run.sh installs
//! them: a Python virtualenv (openapi-spec-validator, openapi-python-client,
//! grpcio-tools, protobuf) and a Node prefix (Redocly CLI). The variables
//! `TEST_CONTRACT_PYTHON` and `TEST_CONTRACT_NODE` name other
//! places. As with kubernetes-validate, a missing tool fails the test
//! (never a silent skip), saying how to install it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// How long one tool run may take before the test fails instead of hanging.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set")
}

/// `$TEST_CONTRACT_<var>` or the cache's `default`; the tool in it must exist.
fn installed(var: &str, default: &str, tool: &str) -> PathBuf {
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(default));
    let path = dir.join(tool);
    assert!(
        path.exists(),
        "{} is missing: run tests/run.sh, which installs it (or set {var})",
        path.display()
    );
    path
}

/// The virtualenv's Python.
pub fn python() -> PathBuf {
    installed(
        "TEST_CONTRACT_PYTHON",
        "lemonade-tests/contract-python",
        "bin/python",
    )
}

/// A console script of the virtualenv.
pub fn python_tool(name: &str) -> PathBuf {
    python().with_file_name(name)
}

/// Redocly CLI.
pub fn redocly() -> PathBuf {
    installed(
        "TEST_CONTRACT_NODE",
        "lemonade-node",
        "node_modules/.bin/redocly",
    )
}

/// A finished tool run: its exit and everything it printed.
pub struct Run {
    pub success: bool,
    pub report: String,
}

/// Runs `program args` in `dir` (without blocking the runtime the gateway
/// serves on) and returns its exit and output.
pub async fn run<I, S>(program: &Path, args: I, dir: &Path) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = tokio::process::Command::new(program);
    command.args(args).current_dir(dir).kill_on_drop(true);
    // Redocly asks the network for nothing when told so.
    command.env("REDOCLY_TELEMETRY", "off");
    command.env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
    let shown = format!("{} in {}", program.display(), dir.display());
    let output: Output = tokio::time::timeout(TOOL_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{shown} ran longer than {TOOL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    Run {
        success: output.status.success(),
        report: format!(
            "$ {shown} ({})\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
