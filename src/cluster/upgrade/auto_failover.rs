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
    /// nothing was recorded (nothing to restore). Refused ([`UpgradeError::AutoFailoverHeld`],
    /// the record kept) while a tablet that leads partitions is down: the nameserver's failover
    /// would make followers lead that lack the writes the dead leader acknowledged last, while
    /// with auto_failover off its restart and recover data keep them.
    pub async fn restore_auto_failover(&self) -> Result<Option<bool>, UpgradeError> {
        let Some(original) = self.recorded_auto_failover().await? else {
            return Ok(None);
        };
        if original {
            let down = self.leaders_on_down_tablets().await?;
            if !down.is_empty() {
                let tablets = down
                    .iter()
                    .map(|(tablet, led)| format!("{tablet} ({led} partition(s))"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(UpgradeError::AutoFailoverHeld { tablets });
            }
        }
        let ns = &self.cluster.ns;
        if ns.auto_failover().await? != original {
            ns.set_auto_failover(original).await?;
        }
        self.journal.delete(KEY).await?;
        Ok(Some(original))
    }

    /// Tablets that are down (offline for the nameserver, or not answering) while the
    /// nameserver records them as the alive leader of partitions, with how many they lead.
    pub async fn leaders_on_down_tablets(&self) -> Result<Vec<(String, usize)>, UpgradeError> {
        let mut led: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for table in self.cluster.ns.show_all_tables().await? {
            for p in &table.table_partition {
                if let Some(leader) = p.alive_leader() {
                    *led.entry(leader.endpoint.clone()).or_default() += 1;
                }
            }
        }
        let mut down = Vec::new();
        for (tablet, count) in led {
            if self.is_down(&tablet).await? {
                down.push((tablet, count));
            }
        }
        Ok(down)
    }

    /// The value auto_failover had before a run turned it off, when one did and did not put it
    /// back yet.
    pub async fn recorded_auto_failover(&self) -> Result<Option<bool>, UpgradeError> {
        Ok(self.journal.get::<bool>(KEY).await?)
    }
}
