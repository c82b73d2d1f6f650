//! The `ssh2` transport: one libssh2 session per host, opened on first use and reopened after a
//! transport error. Host keys are checked strictly against known_hosts before logging in.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, MethodType, Session, Sftp};

use super::known_hosts;
use super::{ExecOutput, PathKind, Result, SshError};
use crate::config::HostAccess;
use crate::interrupt::Interrupt;

pub(super) struct Connection {
    access: HostAccess,
    session: Option<Session>,
}

impl Connection {
    pub(super) fn new(access: HostAccess) -> Self {
        Connection { access, session: None }
    }

    fn ssh_err(&self, context: impl Into<String>) -> impl FnOnce(ssh2::Error) -> SshError + '_ {
        let context = context.into();
        move |source| SshError::Ssh { host: self.access.host.clone(), context, source }
    }

    fn session(&mut self) -> Result<&Session, SshError> {
        if self.session.is_none() {
            self.session = Some(self.open()?);
        }
        Ok(self.session.as_ref().expect("session was just opened"))
    }

    fn open(&self) -> Result<Session> {
        let a = &self.access;
        let connect_err = |source| SshError::Connect { host: a.host.clone(), port: a.port, source };
        let addr =
            (a.host.as_str(), a.port).to_socket_addrs().map_err(connect_err)?.next().ok_or_else(|| {
                connect_err(std::io::Error::new(ErrorKind::NotFound, "no address for this host name"))
            })?;
        let tcp = TcpStream::connect_timeout(&addr, a.connect_timeout).map_err(connect_err)?;
        let mut session = Session::new().map_err(self.ssh_err("cannot create an ssh session"))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(millis(a.connect_timeout));
        let recorded = std::fs::read_to_string(&a.known_hosts).unwrap_or_default();
        if let Some(prefs) = known_hosts::method_preference(&known_hosts::key_types_for(&recorded, &a.host, a.port)) {
            session.method_pref(MethodType::HostKey, &prefs).map_err(self.ssh_err("cannot set host key preference"))?;
        }
        session.handshake().map_err(self.ssh_err("handshake failed"))?;
        self.verify_host_key(&session)?;
        self.authenticate(&session)?;
        Ok(session)
    }

    fn verify_host_key(&self, session: &Session) -> Result<(), SshError> {
        let a = &self.access;
        let mut known = session.known_hosts().map_err(self.ssh_err("cannot read known_hosts"))?;
        if a.known_hosts.exists() {
            known
                .read_file(&a.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(self.ssh_err(format!("cannot parse {}", a.known_hosts.display())))?;
        }
        let (key, key_type) = session.host_key().ok_or_else(|| SshError::Io {
            host: a.host.clone(),
            context: "the server sent no host key".into(),
            source: std::io::Error::other("no host key"),
        })?;
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)))
            .unwrap_or_else(|| "(unknown)".into());
        let key_type = match key_type {
            HostKeyType::Rsa => "RSA",
            HostKeyType::Dss => "DSA",
            HostKeyType::Ecdsa256 | HostKeyType::Ecdsa384 | HostKeyType::Ecdsa521 => "ECDSA",
            HostKeyType::Ed25519 => "ED25519",
            HostKeyType::Unknown => "unknown",
        }
        .to_string();
        let name = known_hosts::host_pattern_name(&a.host, a.port);
        match known.check_port(&a.host, a.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => {
                Err(SshError::HostKeyChanged { name, key_type, fingerprint, known_hosts: a.known_hosts.clone() })
            }
            CheckResult::NotFound | CheckResult::Failure => Err(SshError::HostKeyUnknown {
                host: a.host.clone(),
                port: a.port,
                name,
                key_type,
                fingerprint,
                known_hosts: a.known_hosts.clone(),
            }),
        }
    }

    fn authenticate(&self, session: &Session) -> Result<(), SshError> {
        let a = &self.access;
        let mut tried = Vec::new();
        if a.agent {
            tried.push("ssh-agent".to_string());
            if session.userauth_agent(&a.user).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        for key in &a.identity_files {
            tried.push(key.display().to_string());
            if session.userauth_pubkey_file(&a.user, None, key, None).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        Err(SshError::Auth {
            host: a.host.clone(),
            user: a.user.clone(),
            tried: if tried.is_empty() { "nothing (no agent, no identity_file)".into() } else { tried.join(", ") },
        })
    }

    /// Runs a closure on the session; a transport failure drops the session so the next call
    /// reconnects.
    fn with_session<T>(&mut self, f: impl FnOnce(&Self, &Session) -> Result<T>) -> Result<T> {
        self.session()?;
        let session = self.session.take().expect("session open");
        let result = f(self, &session);
        match &result {
            Err(
                SshError::Ssh { .. } | SshError::Io { .. } | SshError::Timeout { .. } | SshError::Interrupted { .. },
            ) => {}
            _ => self.session = Some(session),
        }
        result
    }

    pub(super) fn exec(&mut self, command: &str, timeout: Duration, stop: &Interrupt) -> Result<ExecOutput> {
        self.with_session(|this, session| this.exec_on(session, command, timeout, stop))
    }

    fn exec_on(&self, session: &Session, command: &str, timeout: Duration, stop: &Interrupt) -> Result<ExecOutput> {
        let started = Instant::now();
        let host = &self.access.host;
        session.set_blocking(true);
        session.set_timeout(millis(timeout));
        let mut channel = session.channel_session().map_err(self.ssh_err("cannot open a channel"))?;
        channel.exec(command).map_err(self.ssh_err(format!("cannot start `{command}`")))?;
        // Read stdout and stderr together without blocking, so neither stream can fill the
        // window while we wait on the other.
        session.set_blocking(false);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 16 * 1024];
        let read_result = loop {
            if stop.is_raised() {
                break Err(SshError::Interrupted { host: host.clone(), command: command.to_string() });
            }
            if started.elapsed() > timeout {
                break Err(SshError::Timeout { host: host.clone(), command: command.to_string(), after: timeout });
            }
            let mut progressed = false;
            for (stream, sink) in [(0, &mut stdout), (1, &mut stderr)] {
                let read = if stream == 0 { channel.read(&mut buf) } else { channel.stderr().read(&mut buf) };
                match read {
                    Ok(0) => {}
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(source) => {
                        return Err(SshError::Io {
                            host: host.clone(),
                            context: format!("reading output of `{command}`"),
                            source,
                        });
                    }
                }
            }
            if !progressed {
                if channel.eof() {
                    break Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        session.set_blocking(true);
        read_result?;
        let remaining = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
        session.set_timeout(millis(remaining));
        channel.wait_close().map_err(self.ssh_err(format!("waiting for `{command}` to finish")))?;
        let exit_code = channel.exit_status().map_err(self.ssh_err("reading the exit status"))?;
        Ok(ExecOutput {
            host: host.clone(),
            command: command.to_string(),
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            duration: started.elapsed(),
        })
    }

    /// Runs `f` with an sftp channel of the session, `timeout` long at most (0: no limit).
    fn with_sftp<T>(&mut self, timeout: u32, f: impl FnOnce(&Self, &Sftp) -> Result<T>) -> Result<T> {
        self.with_session(|this, session| {
            session.set_blocking(true);
            session.set_timeout(timeout);
            let sftp = session.sftp().map_err(this.ssh_err("cannot start sftp"))?;
            f(this, &sftp)
        })
    }

    fn io_err(&self, context: String) -> impl FnOnce(std::io::Error) -> SshError + '_ {
        move |source| SshError::Io { host: self.access.host.clone(), context, source }
    }

    pub(super) fn upload(&mut self, local: &Path, remote: &str) -> Result<u64> {
        self.with_sftp(0, |this, sftp| {
            let mut src =
                std::fs::File::open(local).map_err(this.io_err(format!("cannot read {}", local.display())))?;
            let mode =
                src.metadata().map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap_or(0o644);
            let flags = ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE;
            let mut dst = sftp
                .open_mode(Path::new(remote), flags, (mode & 0o777) as i32, ssh2::OpenType::File)
                .map_err(this.ssh_err(format!("cannot create {remote}")))?;
            let copied = std::io::copy(&mut src, &mut dst).map_err(this.io_err(format!("writing {remote}")))?;
            dst.flush().map_err(this.io_err(format!("writing {remote}")))?;
            Ok(copied)
        })
    }

    pub(super) fn download(&mut self, remote: &str, local: &Path) -> Result<u64> {
        self.with_sftp(0, |this, sftp| {
            let mut src = sftp.open(Path::new(remote)).map_err(this.ssh_err(format!("cannot open {remote}")))?;
            let mut dst =
                std::fs::File::create(local).map_err(this.io_err(format!("cannot create {}", local.display())))?;
            std::io::copy(&mut src, &mut dst).map_err(this.io_err(format!("reading {remote}")))
        })
    }

    pub(super) fn path_kind(&mut self, path: &str) -> Result<PathKind> {
        let timeout = millis(self.access.connect_timeout);
        self.with_sftp(timeout, |_, sftp| {
            Ok(match sftp.stat(Path::new(path)) {
                Err(_) => PathKind::Missing,
                Ok(stat) if stat.is_dir() => PathKind::Dir,
                Ok(stat) if stat.is_file() => PathKind::File,
                Ok(_) => PathKind::Other,
            })
        })
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
