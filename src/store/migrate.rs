//! Moving a single gateway's sled store into an empty PostgreSQL database
//! (`lemonade migrate`), so that an operator who outgrows one machine keeps
//! every account, token and device: users do not register again.
//!
//! Copied: accounts with their sealed credentials, every API token hash,
//! devices (with their ids), cursors with their windows of pushed mail
//! (whose reading is followed), queued pushes (as they are: version,
//! attempts, earliest next try, expiry) and send settings. Not copied:
//! unfinished sends and uploads, whose files are local to the old machine
//! (they are counted, so the operator can tell). The accounts arrive
//! unowned, so the cluster's nodes claim them.
//!
//! The keys are not in the database: the source's `master.key` (which
//! sealed the credentials) and `vapid.pk8` (which the devices subscribed
//! with) must become the cluster's. Their fingerprints are recorded in the
//! target, so a node started with other keys refuses to start instead of
//! failing to open every password.
//!
//! The copy goes through the [`Store`] methods of an unfenced [`PgStore`]
//! (every database constraint applies), account by account, several
//! accounts at once. It is not one transaction: a copy that fails midway
//! says so, and the target must be emptied before trying again, which the
//! refusal of a non-empty target enforces.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use super::send::{SendSettings, SendStore};
use super::{
    AccountRecord, AccountStored, DeviceRecord, DeviceStored, Export, ExportedCursor, Fence,
    PendingPush, PgStore, SealError, Sealer, SledOpenError, SledStore, Store, StoreError,
};
use crate::keys::{MASTER_KEY_FILE, VAPID_KEY_FILE};
use crate::notify::vapid::VapidError;
use crate::notify::VapidKey;

/// How long opening the source waits for a gateway to let go of it: long
/// enough for one that is just stopping, short enough to tell an operator
/// at once that one is still running.
pub const SOURCE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Accounts copied at once (each is several round trips).
const CONCURRENCY: usize = 8;

/// Why nothing, or not everything, was copied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}: no sled store in its db/ directory (is it a gateway's data_dir?)")]
    NoSource(PathBuf),
    #[error("the sled store in {0} is locked: is a gateway still running on {0}? Stop it first")]
    SourceInUse(PathBuf),
    #[error(
        "the target database holds accounts already: migrate copies only into an empty database"
    )]
    NonEmptyTarget,
    #[error(
        "gateway nodes are running on the target database ({0}): stop them, and migrate before starting any"
    )]
    NodesRunning(String),
    #[error(
        "the target database records another {0} than the source's: the cluster must use the source's keys"
    )]
    KeyMismatch(String),
    #[error("the source's accounts {account} and {holder} have the same IMAP login")]
    LoginConflict { account: String, holder: String },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Vapid(#[from] VapidError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the copy stopped midway, and the target database may hold part of the store: \
         empty it (drop and create the database again) before migrating again: {0}"
    )]
    Interrupted(Box<MigrateError>),
}

/// What was copied, and what was not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accounts: usize,
    pub tokens: usize,
    pub devices: usize,
    pub cursors: usize,
    /// Windows of pushed mail whose reading is followed, one per mailbox.
    pub pushed_windows: usize,
    pub queued_pushes: usize,
    pub send_settings: usize,
    /// Records of accounts or devices that no longer exist (left by a
    /// deletion that a crash interrupted): not copied.
    pub skipped: usize,
    /// Not copied: their files are local to the source's machine.
    pub unfinished_sends: usize,
    /// Not copied: their files are local to the source's machine.
    pub uploads: usize,
}

impl Counts {
    fn add(mut self, other: Counts) -> Counts {
        self.accounts += other.accounts;
        self.tokens += other.tokens;
        self.devices += other.devices;
        self.cursors += other.cursors;
        self.pushed_windows += other.pushed_windows;
        self.queued_pushes += other.queued_pushes;
        self.send_settings += other.send_settings;
        self.skipped += other.skipped;
        self.unfinished_sends += other.unfinished_sends;
        self.uploads += other.uploads;
        self
    }
}

/// Opens the sled store of a gateway's `data_dir` (in its `db/`), refusing
/// when a gateway still holds it (after [`SOURCE_LOCK_WAIT`]). Blocks.
pub fn open_source(data_dir: &Path) -> Result<SledStore, MigrateError> {
    SledStore::open_existing(&data_dir.join("db"), SOURCE_LOCK_WAIT).map_err(|e| match e {
        SledOpenError::Missing(_) => MigrateError::NoSource(data_dir.to_owned()),
        SledOpenError::InUse(_) => MigrateError::SourceInUse(data_dir.to_owned()),
        SledOpenError::Store(e) => MigrateError::Store(e),
    })
}

/// The names and fingerprints of the keys in `data_dir`, which the
/// cluster must share (see `crate::startup::fingerprints`).
pub fn source_keys(data_dir: &Path) -> Result<[(&'static str, String); 2], MigrateError> {
    let sealer = Sealer::load(&data_dir.join(MASTER_KEY_FILE))?;
    let vapid = VapidKey::load(&data_dir.join(VAPID_KEY_FILE))?;
    Ok(crate::startup::fingerprints(&sealer, &vapid))
}

/// Refuses a target that holds accounts, or that nodes are running on
/// (they would watch accounts before their cursors are copied).
pub async fn check_target(to: &PgStore) -> Result<(), MigrateError> {
    if to.has_accounts().await? {
        return Err(MigrateError::NonEmptyTarget);
    }
    let nodes = to.live_nodes().await?;
    if !nodes.is_empty() {
        return Err(MigrateError::NodesRunning(nodes.join(", ")));
    }
    Ok(())
}

/// The whole migration of the gateway whose `data_dir` holds `from`:
/// checks the target, records the source's keys as the cluster's, copies.
pub async fn migrate(
    data_dir: &Path,
    from: &SledStore,
    to: &PgStore,
) -> Result<Counts, MigrateError> {
    let keys = source_keys(data_dir)?;
    check_target(to).await?;
    let named: Vec<(&str, &str)> = keys.iter().map(|(n, f)| (*n, f.as_str())).collect();
    if let Some(name) = to.check_keys(&named).await? {
        return Err(MigrateError::KeyMismatch(name));
    }
    copy(from, to).await
}

/// Copies every account with its tokens, devices, cursors, queued pushes
/// and send settings from `from` into `to`, which must hold no account
/// and be unfenced (connected without a node identity).
pub async fn copy(from: &SledStore, to: &PgStore) -> Result<Counts, MigrateError> {
    if let Some(node) = to.node() {
        // Its writes would be fenced against accounts nobody owns yet.
        return Err(StoreError::Backend(format!(
            "migration needs a store without a node identity, not node {}'s",
            node.id
        ))
        .into());
    }
    check_target(to).await?;
    // sled reads from its cache and its files: quick, and nothing else
    // runs in a migration.
    let export = from.export()?;
    let (plans, skipped) = plan(&export);
    let copied = futures_util::stream::iter(plans)
        .map(|plan| copy_account(to, plan))
        .buffer_unordered(CONCURRENCY.min(to.options().pool_size.max(1)))
        .try_fold(
            Counts::default(),
            |total, one| async move { Ok(total.add(one)) },
        )
        .await
        .map_err(|e| MigrateError::Interrupted(Box::new(e)))?;
    Ok(copied.add(Counts {
        skipped,
        unfinished_sends: export.unfinished_sends,
        uploads: export.uploads,
        ..Counts::default()
    }))
}

/// One account and everything that belongs to it.
#[derive(Debug)]
struct AccountPlan<'a> {
    account: &'a AccountRecord,
    tokens: Vec<&'a [u8; 32]>,
    devices: Vec<&'a DeviceRecord>,
    cursors: Vec<&'a ExportedCursor>,
    pushes: Vec<&'a PendingPush>,
    send_settings: Option<&'a SendSettings>,
}

/// Groups the export by account; returns the groups and how many records
/// belong to no exported account (or device) and are left out.
fn plan(export: &Export) -> (Vec<AccountPlan<'_>>, usize) {
    let mut plans: Vec<AccountPlan> = export
        .accounts
        .iter()
        .map(|account| AccountPlan {
            account,
            tokens: Vec::new(),
            devices: Vec::new(),
            cursors: Vec::new(),
            pushes: Vec::new(),
            send_settings: None,
        })
        .collect();
    let at: HashMap<&str, usize> = export
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    for (hash, account_id) in &export.tokens {
        if let Some(p) = slot(&mut plans, &at, account_id) {
            p.tokens.push(hash);
        }
    }
    for device in &export.devices {
        if let Some(p) = slot(&mut plans, &at, &device.account_id) {
            p.devices.push(device);
        }
    }
    for cursor in &export.cursors {
        if let Some(p) = slot(&mut plans, &at, &cursor.account_id) {
            p.cursors.push(cursor);
        }
    }
    for (account_id, settings) in &export.send_settings {
        if let Some(p) = slot(&mut plans, &at, account_id) {
            p.send_settings = Some(settings);
        }
    }
    // A push goes with its device, which must be copied too.
    let devices: HashSet<(&str, &str)> = export
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.account_id.as_str()))
        .collect();
    for push in &export.pushes {
        if devices.contains(&(push.key.device_id.as_str(), push.account_id.as_str())) {
            if let Some(p) = slot(&mut plans, &at, &push.account_id) {
                p.pushes.push(push);
            }
        }
    }
    let records = export.tokens.len()
        + export.devices.len()
        + export.cursors.len()
        + export.send_settings.len()
        + export.pushes.len();
    let placed: usize = plans
        .iter()
        .map(|p| {
            p.tokens.len()
                + p.devices.len()
                + p.cursors.len()
                + usize::from(p.send_settings.is_some())
                + p.pushes.len()
        })
        .sum();
    let skipped = records - placed;
    (plans, skipped)
}

fn slot<'p, 'a>(
    plans: &'p mut [AccountPlan<'a>],
    at: &HashMap<&str, usize>,
    account_id: &str,
) -> Option<&'p mut AccountPlan<'a>> {
    at.get(account_id).map(|i| &mut plans[*i])
}

async fn copy_account(to: &PgStore, plan: AccountPlan<'_>) -> Result<Counts, MigrateError> {
    let account = plan.account;
    store_account(to, account, &plan.tokens).await?;
    for device in &plan.devices {
        match to.put_device(device, usize::MAX).await? {
            DeviceStored::Stored(id) if id == device.id => {}
            other => {
                return Err(StoreError::Backend(format!(
                    "device {} of account {} was not stored as itself: {other:?}",
                    device.id, account.id
                ))
                .into())
            }
        }
    }
    for c in &plan.cursors {
        to.put_cursor(&c.account_id, &c.mailbox, &c.cursor, Fence::SOLE_OWNER)
            .await?;
        if let Some(window) = &c.pushed {
            to.put_pushed_window(&c.account_id, &c.mailbox, window, Fence::SOLE_OWNER)
                .await?;
        }
    }
    for push in &plan.pushes {
        to.import_push(push).await?;
    }
    if let Some(settings) = plan.send_settings {
        to.put_send_settings(&account.id, settings).await?;
    }
    Ok(Counts {
        accounts: 1,
        tokens: plan.tokens.len(),
        devices: plan.devices.len(),
        cursors: plan.cursors.len(),
        pushed_windows: plan.cursors.iter().filter(|c| c.pushed.is_some()).count(),
        queued_pushes: plan.pushes.len(),
        send_settings: usize::from(plan.send_settings.is_some()),
        ..Counts::default()
    })
}

/// Stores the account once per token hash (each storing adds one). An
/// account whose every token was revoked is stored with a random hash,
/// which no token hashes to, revoked at once.
async fn store_account(
    to: &PgStore,
    account: &AccountRecord,
    tokens: &[&[u8; 32]],
) -> Result<(), MigrateError> {
    let placeholder: [u8; 32] = rand::random();
    let hashes: Vec<&[u8; 32]> = match tokens {
        [] => vec![&placeholder],
        some => some.to_vec(),
    };
    for hash in hashes {
        if let AccountStored::LoginTaken(holder) = to.create_account(account, hash).await? {
            return Err(MigrateError::LoginConflict {
                account: account.id.clone(),
                holder,
            });
        }
    }
    if tokens.is_empty() {
        to.revoke_token(&placeholder).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{account, device};
    use crate::store::{Cursor, PushKey};

    fn push(device_id: &str, account_id: &str) -> PendingPush {
        PendingPush {
            key: PushKey {
                device_id: device_id.into(),
                mailbox: "INBOX".into(),
            },
            account_id: account_id.into(),
            messages: Vec::new(),
            count: 1,
            version: 3,
            attempts: 2,
            not_before_ms: 5,
            expires_at_ms: 9,
            shrink: false,
            unseen: None,
            uidvalidity: 0,
            claim: 0,
            merge_times: Vec::new(),
        }
    }

    fn cursor(account_id: &str) -> ExportedCursor {
        ExportedCursor {
            account_id: account_id.into(),
            mailbox: "INBOX".into(),
            cursor: Cursor {
                uidvalidity: 1,
                uidnext: 2,
                highestmodseq: None,
                max_uid_seen: false,
            },
            pushed: None,
        }
    }

    #[test]
    fn records_go_with_their_account_and_those_of_deleted_ones_are_left_out() {
        let export = Export {
            accounts: vec![account("a1"), account("a2")],
            tokens: vec![
                ([1; 32], "a1".into()),
                ([2; 32], "a1".into()),
                ([3; 32], "gone".into()),
            ],
            devices: vec![device("d1", "a1", &["INBOX"]), device("d9", "gone", &[])],
            cursors: vec![cursor("a1"), cursor("a2"), cursor("gone")],
            pushes: vec![push("d1", "a1"), push("d9", "gone"), push("d2", "a2")],
            send_settings: vec![("a2".into(), SendSettings::default())],
            unfinished_sends: 4,
            uploads: 5,
        };
        let (plans, skipped) = plan(&export);
        // A token, a device, a cursor, and the pushes of a device of a
        // deleted account and of a deleted device.
        assert_eq!(skipped, 5);
        let a1 = &plans[0];
        assert_eq!(a1.account.id, "a1");
        assert_eq!(a1.tokens, [&[1; 32], &[2; 32]]);
        assert_eq!(a1.devices.len(), 1);
        assert_eq!(a1.cursors.len(), 1);
        assert_eq!(a1.pushes, [&export.pushes[0]]);
        assert!(a1.send_settings.is_none());
        let a2 = &plans[1];
        assert!(a2.tokens.is_empty() && a2.devices.is_empty() && a2.pushes.is_empty());
        assert_eq!(a2.cursors.len(), 1);
        assert!(a2.send_settings.is_some());
    }
}
