//! Opening the embedded sled database: waiting for another process (or an
//! earlier instance in this one) to let go of its file lock, and starting
//! the thread that flushes it in groups.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::group_commit::GroupCommit;
use super::{StoreError, StoreResult};
use crate::metrics::Histogram;

/// How long opening waits for a previous process (or a previous instance in
/// this process) to let go of the database's file lock. Generous: sled lets
/// go only once its IO threads have written and synced their last buffers,
/// and on ext4 an fsync can wait seconds behind other processes' unwritten
/// data (gigabytes, just after a build); waiting costs nothing when the
/// lock is free.
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens the database. sled releases its file lock from a background thread
/// a moment after the last handle is dropped, so a quick restart (a service
/// manager's, or a test's) can find the lock still held: wait for it, at
/// most `lock_wait`.
pub(super) fn open_when_released(dir: &Path, lock_wait: Duration) -> Result<sled::Db, sled::Error> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024);
    let step = std::time::Duration::from_millis(50);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if lock_held(&e) && waited < lock_wait => {
                std::thread::sleep(step);
                waited += step;
            }
            result => return result,
        }
    }
}

/// Whether opening failed because another handle holds the file lock. sled
/// 0.34 reports it as `ErrorKind::Other` with the lock's own error only in
/// the message ("could not acquire lock on ...: ... WouldBlock ..."), so
/// the kind alone never matches.
pub(super) fn lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().starts_with("could not acquire lock")
}

/// Flushes on a thread of its own with sled's blocking flush: concurrent
/// calls to `flush_async` deadlock in sled 0.34 (spacejam/sled#1308, seen
/// here with a few dozen registrations at once), and one flush at a time
/// serving every waiting caller costs far less than one per caller.
pub(super) fn start_group_commit(
    db: &sled::Db,
    window: Duration,
    flush_times: Arc<Histogram>,
) -> StoreResult<GroupCommit> {
    let db = db.clone();
    GroupCommit::start("lemonade-flush", window, move || {
        let started = std::time::Instant::now();
        let flushed = db.flush().map(drop).map_err(|e| e.to_string());
        flush_times.observe(started.elapsed());
        flushed
    })
    .map_err(|e| StoreError::Backend(format!("cannot start the flushing thread: {e}")))
}
