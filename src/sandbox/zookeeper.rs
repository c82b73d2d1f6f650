//! A real ZooKeeper server on loopback, for tests and the sandbox.
//!
//! Runs the Debian `zookeeper` package's jar with a generated `zoo.cfg`
//! (`reference/tooling.md`, "ZooKeeper 3.8.0 standalone"): bound to 127.0.0.1 on a free port,
//! no AdminServer, `ruok` whitelisted for the readiness probe. The server is our child; `stop`
//! (or drop) kills it and waits for it, so nothing is left behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the Debian package puts the server jar; its manifest class path pulls in the rest.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Makes the server log to its stderr (otherwise SLF4J silently logs nothing).
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";

#[derive(Debug, thiserror::Error)]
pub enum ZooKeeperError {
    #[error(
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} is missing): run `make deps` or \
         `apt-get install -y --no-install-recommends zookeeper default-jre-headless`"
    )]
    NotInstalled,
    #[error("cannot prepare ZooKeeper in {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ZooKeeper on 127.0.0.1:{port} did not answer `ruok` within {waited:?}; its log is {log}")]
    NotReady { port: u16, waited: Duration, log: PathBuf },
}

/// A running ZooKeeper server owned by this process.
#[derive(Debug)]
pub struct ZooKeeperServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// Picks a free TCP port on 127.0.0.1 by binding port 0 and releasing it.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl ZooKeeperServer {
    /// Starts a server whose data and log live in `dir`, and waits until it answers `imok`.
    pub fn start(dir: &Path) -> Result<Self, ZooKeeperError> {
        Self::start_on(dir, None)
    }

    /// Like [`start`](Self::start), on a given port (used to restart on the same address).
    pub fn start_on(dir: &Path, port: Option<u16>) -> Result<Self, ZooKeeperError> {
        if !Path::new(ZOOKEEPER_JAR).exists() {
            return Err(ZooKeeperError::NotInstalled);
        }
        let io = |source| ZooKeeperError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir.join("data")).map_err(io)?;
        let port = match port {
            Some(port) => port,
            None => free_loopback_port().map_err(io)?,
        };
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat\n\
                 maxSessionTimeout=60000\n",
                dir.join("data").display()
            ),
        )
        .map_err(io)?;
        let log_path = dir.join("zookeeper.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io)?;
        let log_err = log.try_clone().map_err(io)?;
        let child = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp"])
            .arg(format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"))
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg)
            .stdin(Stdio::null())
            .process_group(0)
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io)?;
        let mut server = ZooKeeperServer { child: Some(child), port, dir: dir.to_path_buf() };
        let waited = Duration::from_secs(30);
        if !server.wait_ready(waited) {
            server.stop();
            return Err(ZooKeeperError::NotReady { port, waited, log: log_path });
        }
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ruok(self.port) {
                return true;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, the value for `zk_cluster`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id of the server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding `zoo.cfg`, the data and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lets the server outlive this process (for `sandbox up`); returns its pid. Stop it later
    /// with [`stop_pid`](crate::process::stop_pid).
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// Kills the server and waits for it to exit. Safe to call twice.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends the `ruok` four-letter word; true when the server answers `imok`.
pub fn ruok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"ruok").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer == "imok"
}
