//! [`SendStore`] on sled: trees `uploads`, `send_jobs`, `send_idempotency`
//! (account NUL key → job id) and `send_settings`. Uploads and jobs are
//! keyed by their own ids; removing an account's scans them.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::send::{Created, RemovedSendData, SendJob, SendSettings, SendStore, UploadRecord};
use super::sled_store::SledStore;
use super::{StoreError, StoreResult};

fn tree(store: &SledStore, name: &str) -> StoreResult<sled::Tree> {
    Ok(store.db().open_tree(name)?)
}

fn idem_key(account: &str, key: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

#[async_trait::async_trait]
impl SendStore for SledStore {
    async fn put_upload(&self, upload: &UploadRecord) -> StoreResult<()> {
        tree(self, "uploads")?.insert(upload.id.as_bytes(), serde_json::to_vec(upload)?)?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> StoreResult<Option<UploadRecord>> {
        match tree(self, "uploads")?.get(id.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    async fn uploads(&self) -> StoreResult<Vec<UploadRecord>> {
        let mut out = Vec::new();
        for entry in tree(self, "uploads")?.iter() {
            let (_, v) = entry?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    async fn delete_upload(&self, id: &str) -> StoreResult<()> {
        tree(self, "uploads")?.remove(id.as_bytes())?;
        Ok(())
    }

    async fn create_send_job(&self, job: &SendJob) -> StoreResult<Created> {
        let jobs = tree(self, "send_jobs")?;
        let Some(key) = &job.idempotency_key else {
            jobs.insert(job.id.as_bytes(), serde_json::to_vec(job)?)?;
            return Ok(Created::New);
        };
        let idem = tree(self, "send_idempotency")?;
        let value = serde_json::to_vec(job)?;
        let k = idem_key(&job.account_id, key);
        let result = (&jobs, &idem).transaction(|(jobs, idem)| {
            if let Some(existing) = idem.get(&k)? {
                return Ok(Created::Existing(
                    String::from_utf8_lossy(&existing).into_owned(),
                ));
            }
            idem.insert(k.as_slice(), job.id.as_bytes())?;
            jobs.insert(job.id.as_bytes(), value.as_slice())?;
            Ok::<_, ConflictableTransactionError<StoreError>>(Created::New)
        });
        result.map_err(|e| match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        })
    }

    async fn send_id_for_key(&self, account_id: &str, key: &str) -> StoreResult<Option<String>> {
        Ok(tree(self, "send_idempotency")?
            .get(idem_key(account_id, key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn put_send_job(&self, job: &SendJob) -> StoreResult<()> {
        let value = serde_json::to_vec(job)?;
        tree(self, "send_jobs")?
            .fetch_and_update(job.id.as_bytes(), |old| old.map(|_| value.clone()))?;
        Ok(())
    }

    async fn send_job(&self, id: &str) -> StoreResult<Option<SendJob>> {
        match tree(self, "send_jobs")?.get(id.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    async fn unfinished_send_jobs(&self) -> StoreResult<Vec<SendJob>> {
        let mut out = Vec::new();
        for entry in tree(self, "send_jobs")?.iter() {
            let (_, v) = entry?;
            let job: SendJob = serde_json::from_slice(&v)?;
            if !job.status.is_final() {
                out.push(job);
            }
        }
        Ok(out)
    }

    async fn claim_send_job(&self, _id: &str) -> StoreResult<bool> {
        Ok(true)
    }

    async fn send_settings(&self, account_id: &str) -> StoreResult<SendSettings> {
        match tree(self, "send_settings")?.get(account_id.as_bytes())? {
            Some(v) => Ok(serde_json::from_slice(&v)?),
            None => Ok(SendSettings::default()),
        }
    }

    async fn put_send_settings(
        &self,
        account_id: &str,
        settings: &SendSettings,
    ) -> StoreResult<()> {
        tree(self, "send_settings")?
            .insert(account_id.as_bytes(), serde_json::to_vec(settings)?)?;
        Ok(())
    }

    async fn remove_send_data(&self, account_id: &str) -> StoreResult<RemovedSendData> {
        let mut removed = RemovedSendData::default();
        let uploads = tree(self, "uploads")?;
        for entry in uploads.iter() {
            let (key, value) = entry?;
            // An entry that cannot be read cannot be told apart: keep it
            // (uploads expire and are swept anyway).
            let Ok(upload) = serde_json::from_slice::<UploadRecord>(&value) else {
                continue;
            };
            if upload.account_id == account_id {
                uploads.remove(key)?;
                removed.uploads.push(upload.id);
            }
        }
        let jobs = tree(self, "send_jobs")?;
        for entry in jobs.iter() {
            let (key, value) = entry?;
            let Ok(job) = serde_json::from_slice::<SendJob>(&value) else {
                continue;
            };
            if job.account_id == account_id {
                jobs.remove(key)?;
                removed.jobs.push(job.id);
            }
        }
        let idempotency = tree(self, "send_idempotency")?;
        for entry in idempotency.scan_prefix(idem_key(account_id, "")) {
            idempotency.remove(entry?.0)?;
        }
        tree(self, "send_settings")?.remove(account_id.as_bytes())?;
        Ok(removed)
    }
}
