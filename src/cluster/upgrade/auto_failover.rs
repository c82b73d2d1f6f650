//! The auto_failover guard. Leader moves need auto_failover off (the nameserver refuses them
//! with code 301 while it is on, C§2.3), and a tablet stopped with it on is taken offline and
//! rebuilt by the nameserver itself (C§3.4). `tools/openmldb_ops.py` can leave it off for good
//! when it fails (O§5.11, C§6 bug 8); here the value found is journalled before it is changed,
//! so every way out (the guard, the next run, `abort`) puts it back.

use super::{UpgradeError, Upgrader};

/// The journal key holding the value auto_failover had before a run turned it off.
const KEY: &str = "auto_failover";

impl Upgrader {
    /// Turns auto_failover off, first recording the value found (or keeping the value recorded
    /// by an earlier run that never restored it). Returns the original value.
    pub async fn disable_auto_failover(&self) -> Result<bool, UpgradeError> {
        let ns = &self.cluster.ns;
        let original = match self.journal.get::<bool>(KEY).await? {
            Some(recorded) => recorded,
            None => ns.auto_failover().await?,
        };
        self.journal.put(KEY, &original).await?;
        if ns.auto_failover().await? {
            ns.set_auto_failover(false).await?;
        }
        Ok(original)
    }

    /// Puts auto_failover back to the recorded value and forgets the record; `None` when
    /// nothing was recorded (nothing to restore).
    pub async fn restore_auto_failover(&self) -> Result<Option<bool>, UpgradeError> {
        let Some(original) = self.recorded_auto_failover().await? else {
            return Ok(None);
        };
        let ns = &self.cluster.ns;
        if ns.auto_failover().await? != original {
            ns.set_auto_failover(original).await?;
        }
        self.journal.delete(KEY).await?;
        Ok(Some(original))
    }

    /// The value auto_failover had before a run turned it off, when one did and did not put it
    /// back yet.
    pub async fn recorded_auto_failover(&self) -> Result<Option<bool>, UpgradeError> {
        Ok(self.journal.get::<bool>(KEY).await?)
    }
}
