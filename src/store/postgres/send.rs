//! [`SendStore`] on PostgreSQL: uploads, send jobs with their idempotency
//! keys (a unique constraint, so two nodes cannot both create the job of
//! one key), and send settings.

use super::{decode, encode, PgStore};
use crate::store::send::{
    Created, RemovedSendData, SendJob, SendSettings, SendStore, UploadRecord,
};
use crate::store::StoreResult;

#[async_trait::async_trait]
impl SendStore for PgStore {
    async fn put_upload(&self, upload: &UploadRecord) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(
            "INSERT INTO upload (id, account_id, value) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
            &[&upload.id, &upload.account_id, &encode(upload)?],
        )
        .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> StoreResult<Option<UploadRecord>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT value FROM upload WHERE id = $1", &[&id])
            .await?;
        row.map(|row| decode(&row, 0)).transpose()
    }

    async fn uploads(&self) -> StoreResult<Vec<UploadRecord>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query("SELECT value FROM upload ORDER BY id", &[])
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }

    async fn delete_upload(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute("DELETE FROM upload WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn create_send_job(&self, job: &SendJob) -> StoreResult<Created> {
        let mut conn = self.conn().await?;
        // The node that creates the job holds it.
        let (owner, incarnation) = match &self.node {
            Some(node) => (Some(node.id.as_str()), Some(node.incarnation)),
            None => (None, None),
        };
        let inserted = conn
            .query_opt(
                "INSERT INTO send_job (id, account_id, idempotency_key, finished, value, \
                   lease_owner, lease_incarnation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                &[
                    &job.id,
                    &job.account_id,
                    &job.idempotency_key,
                    &job.status.is_final(),
                    &encode(job)?,
                    &owner,
                    &incarnation,
                ],
            )
            .await?;
        if inserted.is_some() {
            return Ok(Created::New);
        }
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        match self.send_id_for_key(&job.account_id, key).await? {
            Some(existing) => Ok(Created::Existing(existing)),
            None => Err(crate::store::StoreError::Backend(format!(
                "send job id {} exists already",
                job.id
            ))),
        }
    }

    async fn send_id_for_key(&self, account_id: &str, key: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT id FROM send_job WHERE account_id = $1 AND idempotency_key = $2",
                &[&account_id, &key],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn put_send_job(&self, job: &SendJob) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let value = encode(job)?;
        let Some(node) = &self.node else {
            conn.execute(
                "UPDATE send_job SET value = $2, finished = $3 WHERE id = $1",
                &[&job.id, &value, &job.status.is_final()],
            )
            .await?;
            return Ok(());
        };
        // Only the holder writes, and only while its lease lives.
        let updated = conn
            .execute(
                "UPDATE send_job SET value = $2, finished = $3 WHERE id = $1 \
                 AND lease_owner = $4 AND lease_incarnation = $5 \
                 AND EXISTS (SELECT 1 FROM node WHERE id = $4 AND incarnation = $5 \
                             AND lease_until > now())",
                &[
                    &job.id,
                    &value,
                    &job.status.is_final(),
                    &node.id,
                    &node.incarnation,
                ],
            )
            .await?;
        if updated == 0 {
            let exists = conn
                .query_opt("SELECT 1 FROM send_job WHERE id = $1", &[&job.id])
                .await?;
            if exists.is_some() {
                return Err(crate::store::StoreError::Fenced);
            }
        }
        Ok(())
    }

    async fn send_job(&self, id: &str) -> StoreResult<Option<SendJob>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT value FROM send_job WHERE id = $1", &[&id])
            .await?;
        row.map(|row| decode(&row, 0)).transpose()
    }

    async fn unfinished_send_jobs(&self) -> StoreResult<Vec<SendJob>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT value FROM send_job WHERE NOT finished ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }

    async fn claim_send_job(&self, id: &str) -> StoreResult<bool> {
        let Some(node) = &self.node else {
            return Ok(true);
        };
        let mut conn = self.conn().await?;
        let claimed = conn
            .query_opt(
                "UPDATE send_job j SET lease_owner = $2, lease_incarnation = $3 \
                 WHERE j.id = $1 AND NOT j.finished \
                   AND EXISTS (SELECT 1 FROM node WHERE id = $2 AND incarnation = $3 \
                               AND lease_until > now()) \
                   AND (j.lease_owner IS NULL \
                        OR (j.lease_owner = $2 AND j.lease_incarnation = $3) \
                        OR NOT EXISTS (SELECT 1 FROM node n WHERE n.id = j.lease_owner \
                            AND n.incarnation = j.lease_incarnation \
                            AND n.lease_until > now() - make_interval(secs => $4))) \
                 RETURNING j.id",
                &[
                    &id,
                    &node.id,
                    &node.incarnation,
                    &self.send_takeover.as_secs_f64(),
                ],
            )
            .await?;
        Ok(claimed.is_some())
    }

    async fn send_settings(&self, account_id: &str) -> StoreResult<SendSettings> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT value FROM send_settings WHERE account_id = $1",
                &[&account_id],
            )
            .await?;
        Ok(row
            .map(|row| decode(&row, 0))
            .transpose()?
            .unwrap_or_default())
    }

    async fn put_send_settings(
        &self,
        account_id: &str,
        settings: &SendSettings,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(
            "INSERT INTO send_settings (account_id, value) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET value = EXCLUDED.value",
            &[&account_id, &encode(settings)?],
        )
        .await?;
        Ok(())
    }

    async fn remove_send_data(&self, account_id: &str) -> StoreResult<RemovedSendData> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        let uploads = conn
            .query(
                "DELETE FROM upload WHERE account_id = $1 RETURNING id",
                &[&account_id],
            )
            .await?;
        let jobs = conn
            .query(
                "DELETE FROM send_job WHERE account_id = $1 RETURNING id",
                &[&account_id],
            )
            .await?;
        conn.execute(
            "DELETE FROM send_settings WHERE account_id = $1",
            &[&account_id],
        )
        .await?;
        conn.commit().await?;
        let mut removed = RemovedSendData {
            uploads: uploads.iter().map(|row| row.get(0)).collect(),
            jobs: jobs.iter().map(|row| row.get(0)).collect(),
        };
        removed.uploads.sort();
        removed.jobs.sort();
        Ok(removed)
    }
}
