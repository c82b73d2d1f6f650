//! What `sandbox up`'s options make of a cluster: the tablet flags of `--fast`,
//! `--storage-modes`, `--snapshot-window`, `--real-replication` and `--use-name`, and the tables
//! it creates. Both layouts put these
//! flags into the tablets' flags files (`separate`, `deploy`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::UpOptions;

/// Which storage modes a sandbox's tables use (C§2.4 `storage_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageModes {
    /// Every table kMemory.
    #[default]
    Memory,
    /// Besides the memory tables, kSSD and kHDD tables with one and several replicas; every
    /// tablet gets an `--ssd_root_path` (and its recycle bin) next to the template's
    /// `--hdd_root_path`.
    Mixed,
}

/// The `--fast` flags a tablet takes: the ZooKeeper ones of [`fast_flags`], and the
/// replicator's and the file sender's waits a tenth of their defaults (`src/flags.cc:93-98`,
/// `:127-129`; binlog_sync_wait_time matters only where `--binlog_notify_on_put` is off). The
/// snapshot schedule is left alone: `--snapshot-window` is for that.
pub(super) fn tablet_fast_flags() -> Vec<(&'static str, String)> {
    let mut flags: Vec<(&'static str, String)> = fast_flags()
        .into_iter()
        .filter(|(k, _)| ["zk_session_timeout", "zk_keep_alive_check_interval"].contains(k))
        .collect();
    flags.extend([
        ("binlog_sync_wait_time", "10".into()),
        ("binlog_coffee_time", "100".into()),
        ("binlog_match_logoffset_interval", "100".into()),
        ("stream_close_wait_time_ms", "100".into()),
        ("retry_send_file_wait_time_ms", "300".into()),
    ]);
    flags
}

/// The tablet flags `--storage-modes` and `--snapshot-window` add, in both layouts.
pub(super) fn tablet_option_flags(options: &UpOptions) -> Vec<(&'static str, String)> {
    let mut flags = Vec::new();
    if options.storage_modes == StorageModes::Mixed {
        // The template has the HDD root; the SSD lines are commented out there.
        flags.push(("ssd_root_path", "./db_ssd".to_string()));
        flags.push(("recycle_bin_ssd_root_path", "./recycle_ssd".to_string()));
    }
    if let Some(after) = options.snapshot_window {
        flags.extend(snapshot_window_flags(after, chrono::Local::now()));
    }
    if options.real_replication {
        // Later lines win over the --fast ones.
        flags.extend(real_replication_flags());
    }
    flags
}

/// The flags of a nameserver or tablet started with a server name on `endpoint`'s address and
/// port: `--endpoint` stays commented out as in the template (O§3), the simulator is told the
/// address `GetLocalIp` would find.
pub(super) fn use_name_flags(endpoint: &str) -> Vec<(&'static str, String)> {
    let (host, port) = endpoint.rsplit_once(':').unwrap_or_default();
    vec![("use_name", "true".into()), ("port", port.into()), ("sim_local_ip", host.into())]
}

/// `src/flags.cc`'s replicator defaults (not the template's `binlog_notify_on_put=true`),
/// for `--real-replication`.
pub(super) fn real_replication_flags() -> Vec<(&'static str, String)> {
    vec![
        ("binlog_notify_on_put", "false".into()),
        ("binlog_sync_wait_time", "100".into()),
        ("binlog_sync_batch_size", "32".into()),
        ("binlog_coffee_time", "1000".into()),
        ("binlog_match_logoffset_interval", "1000".into()),
    ]
}

/// `--snapshot-window AFTER`: the tablets check the snapshot hour every AFTER
/// (`--make_snapshot_check_interval`, first AFTER after their start), the hour being the local
/// hour AFTER from now (`--make_snapshot_time`, compared with the local hour,
/// `src/tablet/tablet_impl.cc:2737-2741`), and every replica is snapshotted whatever it
/// wrote (`--make_snapshot_threshold_offset=0`). A tablet (re)started within that hour
/// snapshots its replicas AFTER later, then checks again an hour on.
pub fn snapshot_window_flags<Tz: chrono::TimeZone>(
    after: Duration,
    now: chrono::DateTime<Tz>,
) -> Vec<(&'static str, String)> {
    use chrono::Timelike;
    let fires = now + chrono::Duration::from_std(after).unwrap_or_default();
    vec![
        ("make_snapshot_time", fires.hour().to_string()),
        ("make_snapshot_check_interval", after.as_millis().max(1).to_string()),
        ("make_snapshot_threshold_offset", "0".to_string()),
    ]
}

/// Timing flags of a `--fast` sandbox: OpenMLDB's flags scaled down (C§7).
pub(super) fn fast_flags() -> Vec<(&'static str, String)> {
    vec![
        ("zk_session_timeout", "3000".into()),
        ("tablet_heartbeat_timeout", "8000".into()),
        ("tablet_offline_check_interval", "200".into()),
        ("get_task_status_interval", "200".into()),
        ("get_table_status_interval", "500".into()),
        ("name_server_task_wait_time", "100".into()),
        ("zk_keep_alive_check_interval", "2000".into()),
    ]
}

/// One table `sandbox up` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTable {
    pub db: &'static str,
    pub name: &'static str,
    pub partitions: u32,
    pub replicas: u32,
    /// `kMemory`, `kSSD` or `kHDD`.
    pub storage_mode: &'static str,
}

/// The sandbox's tables: memory tables with 1, 2 and 3 replicas, and with
/// `--storage-modes mixed` also SSD and HDD tables with one and several replicas (replica
/// counts capped at the number of tablets).
pub fn sandbox_tables(tablets: usize, storage_modes: StorageModes) -> Vec<SandboxTable> {
    let r = |n: u32| n.min(tablets as u32);
    let table = |db, name, partitions, replicas, storage_mode| SandboxTable {
        db,
        name,
        partitions,
        replicas: r(replicas),
        storage_mode,
    };
    let mut tables = vec![
        table("demo", "single", 4, 1, "kMemory"),
        table("demo", "double", 4, 2, "kMemory"),
        table("demo", "triple", 4, 3, "kMemory"),
        table("shop", "orders", 8, 2, "kMemory"),
        table("shop", "events", 6, 3, "kMemory"),
    ];
    if storage_modes == StorageModes::Mixed {
        tables.extend([
            table("disk", "ssd_single", 2, 1, "kSSD"),
            table("disk", "ssd_triple", 4, 3, "kSSD"),
            table("disk", "hdd_single", 2, 1, "kHDD"),
            table("disk", "hdd_double", 2, 2, "kHDD"),
            table("disk", "hdd_triple", 4, 3, "kHDD"),
        ]);
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn snapshot_window_is_the_hour_the_first_check_falls_in() {
        let at = |h, m, s| chrono::Utc.with_ymd_and_hms(2024, 12, 2, h, m, s).unwrap();
        let flags = snapshot_window_flags(Duration::from_secs(30), at(10, 20, 0));
        assert_eq!(
            flags,
            vec![
                ("make_snapshot_time", "10".to_string()),
                ("make_snapshot_check_interval", "30000".to_string()),
                ("make_snapshot_threshold_offset", "0".to_string()),
            ]
        );
        assert_eq!(snapshot_window_flags(Duration::from_secs(30), at(10, 59, 50))[0].1, "11");
        assert_eq!(snapshot_window_flags(Duration::from_secs(30), at(23, 59, 50))[0].1, "0");
    }

    #[test]
    fn mixed_storage_modes_add_disk_tables_and_roots() {
        let memory = sandbox_tables(3, StorageModes::Memory);
        assert!(memory.iter().all(|t| t.storage_mode == "kMemory"));
        let mixed = sandbox_tables(3, StorageModes::Mixed);
        assert_eq!(mixed.len(), memory.len() + 5);
        for mode in ["kSSD", "kHDD"] {
            let replicas: Vec<u32> = mixed.iter().filter(|t| t.storage_mode == mode).map(|t| t.replicas).collect();
            assert!(replicas.contains(&1) && replicas.iter().any(|r| *r > 1), "{mode}: {replicas:?}");
        }
        assert!(sandbox_tables(1, StorageModes::Mixed).iter().all(|t| t.replicas == 1));

        let options = UpOptions {
            storage_modes: StorageModes::Mixed,
            snapshot_window: Some(Duration::from_secs(20)),
            ..UpOptions::default()
        };
        let templates = crate::sandbox::release::templates::TABLET_FLAGS;
        let flags = crate::sandbox::release::templates::render_flags(templates, &tablet_option_flags(&options));
        let set: Vec<&str> = flags.lines().filter(|l| l.starts_with("--")).collect();
        for line in
            ["--ssd_root_path=./db_ssd", "--recycle_bin_ssd_root_path=./recycle_ssd", "--hdd_root_path=./db_hdd"]
        {
            assert!(set.contains(&line), "{flags}");
        }
        assert_eq!(set.iter().filter(|l| l.starts_with("--make_snapshot_time=")).count(), 1, "{flags}");
        assert!(set.contains(&"--make_snapshot_check_interval=20000"), "{flags}");
        let plain = tablet_option_flags(&UpOptions::default());
        assert!(plain.is_empty(), "defaults change nothing: {plain:?}");
    }
}
