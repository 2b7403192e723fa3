//! Process limits a server with many connections needs: each watched
//! mailbox holds one socket, so the open-files soft limit is raised to the
//! hard limit at start.

/// The open-files limit after trying to raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard ceiling (only root can raise it).
    pub hard: u64,
}

/// Raises the open-files soft limit to the hard limit and reports both.
/// Failure to raise is not fatal: the limits in force are reported.
pub fn raise_open_files() -> std::io::Result<OpenFiles> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    Ok(OpenFiles { soft, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        let limits = raise_open_files().unwrap();
        assert!(limits.soft <= limits.hard);
        assert!(limits.soft > 0);
    }
}
