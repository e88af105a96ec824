//! `store copy`: every event and attempt of one store into another, whatever their engines.
//!
//! Events go over in the source's order, a batch per transaction on the target; an id the target
//! already holds is skipped, so a copy that stopped half-way (or ran before) is simply run again.
//! The target remembers how far each source was copied, so a second run starts where the first
//! stopped instead of reading the source from the beginning. A copy that stored anything ends by
//! letting the target settle (PostgreSQL: `VACUUM (ANALYZE)`), as a relay's own vacuums would have.

use super::{Store, StoreError};
use crate::support::clock::now_ms;

/// Events per read from the source and per transaction on the target.
const COPY_BATCH: u32 = 500;

/// How far a copy is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Events read from the source in this run.
    pub read: u64,
    /// Of those, stored in the target (the others were there already).
    pub copied: u64,
}

/// Copies every event of `from` into `to`; `source` names the source in the target's memory of
/// copies (give it without a password). `progress` is called after each batch.
pub async fn copy_all(
    from: &dyn Store,
    to: &dyn Store,
    source: &str,
    mut progress: impl FnMut(CopyProgress),
) -> Result<CopyProgress, StoreError> {
    let key = format!("store_copy.{source}");
    let mut after: i64 = match to.state(&key).await? {
        Some(seq) => seq
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("the copy position `{seq}` is not a number")))?,
        None => 0,
    };
    let mut done = CopyProgress::default();
    loop {
        let batch = from.export(after, COPY_BATCH).await?;
        let Some(last) = batch.last().map(|e| e.seq) else {
            if done.copied > 0 {
                to.settle().await?;
            }
            return Ok(done);
        };
        done.read += batch.len() as u64;
        done.copied += to.import(batch).await?;
        after = last;
        to.set_state(&key, Some(after.to_string()), now_ms()).await?;
        progress(done);
    }
}
