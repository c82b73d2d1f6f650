//! `sandbox up --spark-master yarn`: TaskManagers configured for YARN as OpenMLDB's docs set
//! them up (`docs/en/deploy/conf.md`, yarn section; O§3.4), so the upgrade's YARN steps can be
//! rehearsed: `spark.master=yarn`, `spark.yarn.jars=hdfs://.../jars/*` (an uploaded copy of the
//! Spark distribution's `jars/`), `batchjob.jar.path` naming the uploaded batch-job jar,
//! `offline.data.prefix` on HDFS and `hadoop.conf.dir` (YARN mode needs it, or
//! `HADOOP_CONF_DIR`; the simulated TaskManager checks all of this at start as the real one
//! does).
//!
//! There is no Hadoop in a sandbox: `<sandbox>/hdfs/bin/hdfs` is a stand-in of the HDFS command
//! line (`hdfs.sh`, its header says what it implements) keeping "HDFS" in `<sandbox>/hdfs/root`,
//! and `<sandbox>/hdfs/conf` a Hadoop conf dir naming it. `up` uploads the release's batch-job
//! jar and its Spark jars there, as an operator does before the first YARN job. Upgrades are
//! given `--set hdfs="<sandbox>/hdfs/bin/hdfs dfs"`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::release::{self, Release};
use super::{copy_tree, io_err, SandboxError};

/// The stand-in `hdfs` command.
pub const HDFS_SH: &str = include_str!("hdfs.sh");
/// The file system the TaskManagers' properties name.
pub const DEFAULT_FS: &str = "hdfs://sandbox-nn:8020";
/// Where the Spark jars and the batch-job jar are uploaded, under [`DEFAULT_FS`].
pub const SPARK_JARS_DIR: &str = "/openmldb/spark/jars";
pub const BATCHJOB_DIR: &str = "/openmldb/batchjob";

/// Which Spark master a sandbox's TaskManagers use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SparkMaster {
    /// `local[*]`, the template's.
    #[default]
    Local,
    /// `yarn` (yarn-cluster), with the Spark jars and the batch-job jar on the stand-in HDFS.
    Yarn,
}

/// The stand-in HDFS of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdfs {
    /// `<sandbox>/hdfs`.
    pub dir: PathBuf,
}

impl Hdfs {
    pub fn new(sandbox: &Path) -> Hdfs {
        Hdfs { dir: sandbox.join("hdfs") }
    }

    /// The command prefix an upgrade is given (`--set hdfs=...`).
    pub fn command(&self) -> String {
        format!("{} dfs", self.dir.join("bin/hdfs").display())
    }

    /// The local directory standing for HDFS's `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The local path of an HDFS path (`hdfs://<any authority>/p` or `/p`).
    pub fn local(&self, path: &str) -> PathBuf {
        let path = match path.strip_prefix("hdfs://") {
            Some(rest) => rest.find('/').map_or("", |at| &rest[at..]),
            None => path,
        };
        self.root().join(path.trim_start_matches('/'))
    }

    /// Writes the command and a Hadoop conf dir, and uploads the release's batch-job jar and
    /// its Spark distribution's jars. Returns the TaskManager properties that point at them.
    pub fn set_up(&self, release: &Release) -> Result<Vec<(&'static str, String)>, SandboxError> {
        let command = self.dir.join("bin/hdfs");
        std::fs::create_dir_all(self.dir.join("bin")).map_err(io_err(&self.dir))?;
        std::fs::write(&command, HDFS_SH).map_err(io_err(&command))?;
        std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).map_err(io_err(&command))?;
        let conf = self.dir.join("conf");
        std::fs::create_dir_all(&conf).map_err(io_err(&conf))?;
        let core_site = format!(
            "<?xml version=\"1.0\"?>\n<!-- The sandbox's stand-in HDFS: {} -->\n<configuration>\n  \
             <property><name>fs.defaultFS</name><value>{DEFAULT_FS}</value></property>\n</configuration>\n",
            self.root().display()
        );
        std::fs::write(conf.join("core-site.xml"), core_site).map_err(io_err(&conf))?;

        let jars = self.local(SPARK_JARS_DIR);
        copy_tree(&release.spark_dir.join("jars"), &jars).map_err(io_err(&jars))?;
        let jar = release::batchjob_jar_name(&release.version);
        let batchjob = self.local(BATCHJOB_DIR);
        std::fs::create_dir_all(&batchjob).map_err(io_err(&batchjob))?;
        std::fs::copy(release.dir.join("taskmanager/lib").join(&jar), batchjob.join(&jar))
            .map_err(io_err(&batchjob))?;
        std::fs::create_dir_all(self.local("/openmldb/offline")).map_err(io_err(&self.dir))?;
        Ok(vec![
            ("spark.master", "yarn".into()),
            ("spark.yarn.jars", format!("{DEFAULT_FS}{SPARK_JARS_DIR}/*")),
            ("batchjob.jar.path", format!("{DEFAULT_FS}{BATCHJOB_DIR}/{jar}")),
            ("offline.data.prefix", format!("{DEFAULT_FS}/openmldb/offline/")),
            ("hadoop.conf.dir", conf.display().to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdfs_paths_map_into_the_root_whatever_the_authority() {
        let hdfs = Hdfs::new(Path::new("/sb"));
        assert_eq!(
            hdfs.local("hdfs://sandbox-nn:8020/openmldb/spark/jars"),
            Path::new("/sb/hdfs/root/openmldb/spark/jars")
        );
        assert_eq!(hdfs.local("hdfs:///a/b.jar"), Path::new("/sb/hdfs/root/a/b.jar"));
        assert_eq!(hdfs.local("/a"), Path::new("/sb/hdfs/root/a"));
        assert_eq!(hdfs.command(), "/sb/hdfs/bin/hdfs dfs");
    }
}
