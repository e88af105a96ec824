//! A lease in `relay_state`, taken in one statement: of several relays asking at once, one gets it.

use super::PostgresStore;
use super::connect::classify;
use crate::store::StoreError;

impl PostgresStore {
    /// The lease is stored as `"<holder> <until_ms>"`; it is taken when free, expired or already
    /// `holder`'s, all in one `INSERT … ON CONFLICT … WHERE`.
    pub(super) async fn take_lease_atomically(
        &self,
        key: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let value = format!("{holder} {until_ms}");
        let taken = client
            .query_opt(
                "INSERT INTO relay_state (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                 WHERE split_part(relay_state.value, ' ', 1) = $4
                    OR split_part(relay_state.value, ' ', 2)::BIGINT <= $3
                 RETURNING key",
                &[&key, &value, &now_ms, &holder],
            )
            .await
            .map_err(classify)?;
        Ok(taken.is_some())
    }
}
