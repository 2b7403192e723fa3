//! CPU time from `/proc`, for the benchmarks that print CPU per operation:
//! a whole process's (the gateway under load) or the calling thread's.
//! Resolution is the kernel's clock tick (10 ms on most systems), so callers
//! measure rounds long enough for that to be small.

use std::sync::OnceLock;

/// Clock ticks per second, the unit of `/proc/*/stat`'s CPU fields; asked
/// once, so no measured interval pays for running `getconf`.
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User and system CPU seconds from a `/proc/.../stat` file.
pub fn user_and_system(stat_path: &str) -> (f64, f64) {
    let ticks = clock_ticks();
    let stat = std::fs::read_to_string(stat_path).expect("/proc stat file");
    let after = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (fields[11] / ticks, fields[12] / ticks)
}
