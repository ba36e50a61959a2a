//! A real `redis-server` (Debian's package), started on a free loopback port with its own
//! temporary directory, stopped (and its directory removed) when dropped. Used by the Redis
//! store's tests, the fleet tests (`crates/fleet`) and the benchmark (`crates/bench`).
//!
//! Beyond start, stop and restart, it can do to a server what operations do to one: a clean
//! `SHUTDOWN`, a restart that lost everything (no persistence), a `FLUSHALL`, a snapshot and a
//! restart from it (a rollback), a replica and its promotion (a failover), a pause (`SIGSTOP`:
//! a hung server), `CLIENT PAUSE` (a server holding every client's commands). Commands go as
//! raw RESP over a fresh TCP connection, so the fixture needs no client library; they work on
//! plain (not TLS) servers only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How a server keeps its data across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// An append-only file synced on every write (`appendfsync always`): a killed server loses
    /// nothing. What `docs/fleet.md` asks of a production Redis.
    AppendOnly,
    /// RDB snapshots only, and only when asked (`SAVE`, or [`RedisServer::shutdown`], which
    /// saves): a killed server comes back with its last snapshot.
    Snapshot,
}

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// `--tls-*` arguments: the server speaks TLS only.
    tls: Vec<String>,
    persistence: Persistence,
    /// `--replicaof <host> <port>` while this server is a replica.
    replica_of: Option<u16>,
    /// Snapshots taken so far (names the next one).
    snapshots: u32,
}

/// A reply to a raw command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the like.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$...` (none for a nil).
    Bulk(Option<Vec<u8>>),
    /// `*...` (none for a nil array).
    Array(Option<Vec<Reply>>),
}

impl RedisServer {
    /// Starts one that persists every write in an append-only file; panics with a hint if
    /// `redis-server` is not installed.
    pub fn start() -> Self {
        Self::start_with(Persistence::AppendOnly)
    }

    /// Starts one that keeps its data as `persistence` says.
    pub fn start_with(persistence: Persistence) -> Self {
        let mut server = Self::unstarted(persistence, None);
        server.spawn();
        server
    }

    /// Starts one that speaks TLS only (`rediss://`), with the PEM files of its certificate,
    /// key and CA, written in its directory; clients need no certificate of their own.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Self {
        let mut server = Self::unstarted(Persistence::AppendOnly, None);
        let mut tls = vec!["--tls-auth-clients".to_owned(), "no".to_owned()];
        for (flag, name, pem) in [
            ("--tls-cert-file", "cert.pem", cert),
            ("--tls-key-file", "key.pem", key),
            ("--tls-ca-cert-file", "ca.pem", ca),
        ] {
            std::fs::write(server.dir.join(name), pem).unwrap();
            tls.extend([flag.to_owned(), server.dir.join(name).display().to_string()]);
        }
        server.tls = tls;
        server.spawn();
        server
    }

    /// Starts a replica of `primary` (append-only, like it) and waits until it has synced.
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        let mut server = Self::unstarted(Persistence::AppendOnly, Some(primary.port));
        server.spawn();
        server.wait_for("replication", "master_link_status", "up");
        server
    }

    fn unstarted(persistence: Persistence, replica_of: Option<u16>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("helloflex-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { child: None, port, dir, tls: Vec::new(), persistence, replica_of, snapshots: 0 }
    }

    fn spawn(&mut self) {
        self.spawn_appending(self.persistence == Persistence::AppendOnly);
    }

    /// Starts the process; `append_only` says whether it starts with its append-only file on
    /// (off, it loads `dump.rdb` if there is one).
    fn spawn_appending(&mut self, append_only: bool) {
        let port = self.port.to_string();
        let ports = if self.tls.is_empty() {
            ["--port", &port, "", ""]
        } else {
            ["--port", "0", "--tls-port", &port]
        };
        let mut command = Command::new("redis-server");
        command
            .args(ports.iter().filter(|a| !a.is_empty()))
            .args(["--bind", "127.0.0.1"])
            .args(&self.tls)
            .args(["--save", ""])
            .args(["--appendonly", if append_only { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            // A replica syncs at once (the default waits 5 s for more replicas to join).
            .args(["--repl-diskless-sync-delay", "0"]);
        if let Some(primary) = self.replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = command
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server is not installed (apt-get install -y redis-server; .ci/run does it)",
            );
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// `redis://127.0.0.1:<port>/` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_empty() { "redis" } else { "rediss" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory it keeps its files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every file it persisted data in: `dump.rdb`, the append-only files, snapshots taken.
    pub fn data_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_none_or(|e| e != "pem") {
                    files.push(path);
                }
            }
        }
        files
    }

    /// Stops the server at once (`SIGKILL`): with the append-only file, nothing is lost (every
    /// write was synced); with snapshots only, what was written since the last one is.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly (`SHUTDOWN`: the append-only file flushed; with snapshots only,
    /// one is saved first) and waits for it to exit.
    pub fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let save = match self.persistence {
            Persistence::AppendOnly => "NOSAVE",
            Persistence::Snapshot => "SAVE",
        };
        // No reply: the server closes the connection as it exits.
        let _ = self.try_command(&["SHUTDOWN", save]);
        for _ in 0..1000 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server on port {} did not shut down within 10 s", self.port);
    }

    /// Starts it again on the same port and directory (what it had stored comes back, as its
    /// persistence kept it). Stops it first if it runs.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restarts it with nothing on disk: what a server without persistence comes back as.
    pub fn restart_without_data(&mut self) {
        self.stop();
        self.remove_data();
        self.spawn();
    }

    /// `SAVE`s a snapshot and keeps a copy of it aside, for [`RedisServer::restart_from`].
    pub fn snapshot(&mut self) -> PathBuf {
        self.ok(&["SAVE"]);
        self.snapshots += 1;
        let copy = self.dir.join(format!("snapshot-{}.rdb", self.snapshots));
        std::fs::copy(self.dir.join("dump.rdb"), &copy).unwrap();
        copy
    }

    /// Restarts it from `snapshot` alone (a rollback: a restore from a backup, an old disk):
    /// what was written after the snapshot is gone. With the append-only file, the server loads
    /// the snapshot, then turns the file on again (rewritten from what it loaded).
    pub fn restart_from(&mut self, snapshot: &Path) {
        self.stop();
        self.remove_data();
        std::fs::copy(snapshot, self.dir.join("dump.rdb")).unwrap();
        self.spawn_appending(false);
        if self.persistence == Persistence::AppendOnly {
            self.ok(&["CONFIG", "SET", "appendonly", "yes"]);
            self.wait_for("persistence", "aof_rewrite_in_progress", "0");
            self.wait_for("persistence", "aof_rewrite_scheduled", "0");
            self.wait_for("persistence", "aof_last_bgrewrite_status", "ok");
        }
    }

    fn remove_data(&self) {
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
        let _ = std::fs::remove_dir_all(self.dir.join("appendonlydir"));
    }

    /// `FLUSHALL`: every key of every database gone, the server still running.
    pub fn flushall(&self) {
        self.ok(&["FLUSHALL"]);
    }

    /// Makes this replica a primary (`REPLICAOF NO ONE`): a failover. It stays one across
    /// restarts.
    pub fn promote(&mut self) {
        self.ok(&["REPLICAOF", "NO", "ONE"]);
        self.replica_of = None;
    }

    /// Makes this server a replica of `primary` (`REPLICAOF`: its data replaced by the
    /// primary's) and waits until it has synced.
    pub fn follow(&mut self, primary: &RedisServer) {
        self.ok(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]);
        self.replica_of = Some(primary.port);
        self.wait_for("replication", "master_link_status", "up");
    }

    /// Waits until `replica` has every write this server made so far (its replication offset
    /// caught up with this server's).
    pub fn wait_until_replicated(&self, replica: &RedisServer) {
        let offset = |server: &RedisServer, field| {
            server.info("replication", field).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let target = offset(self, "master_repl_offset");
        for _ in 0..400 {
            if offset(replica, "slave_repl_offset") >= target {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the replica on port {} did not catch up", replica.port);
    }

    /// Freezes the process (`SIGSTOP`): it accepts connections (the kernel does) and answers
    /// nothing, like a hung or swapping server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `CLIENT PAUSE <ms> ALL`: for `pause`, the server holds every client's commands (it
    /// accepts connections and answers nothing), then runs them; what a failover's or an
    /// operator's pause does. Returns at once.
    pub fn client_pause(&self, pause: Duration) {
        self.ok(&["CLIENT", "PAUSE", &pause.as_millis().to_string(), "ALL"]);
    }

    /// Waits until the server answers `PING` again (after a pause); panics after 400 tries.
    pub fn wait_until_answering(&self) {
        for _ in 0..400 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("redis-server on port {} did not answer again", self.port);
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// The value of `field` in `INFO <section>`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        let Reply::Bulk(Some(text)) = self.command(&["INFO", section]) else { return None };
        let prefix = format!("{field}:");
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
    }

    fn wait_for(&self, section: &str, field: &str, value: &str) {
        for _ in 0..400 {
            if self.info(section, field).as_deref() == Some(value) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("INFO {section} never showed {field}:{value} on port {}", self.port);
    }

    /// Sends one command and reads its reply; panics if the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Reply {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("{} on port {} failed: {e}", args[0], self.port))
    }

    fn ok(&self, args: &[&str]) {
        let reply = self.command(args);
        assert_eq!(reply, Reply::Status("OK".into()), "{args:?}");
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        stream.write_all(&request)?;
        read_reply(&mut BufReader::new(stream))
    }

    /// Whether it answers `PING` (raw RESP: the fixture needs no client library); a TLS server
    /// is up once it accepts connections.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        if !self.tls.is_empty() {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| invalid("an empty reply line"))?;
    let number = || rest.parse::<i64>().map_err(|_| invalid("not a number"));
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(len);
                Reply::Bulk(Some(bytes))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len).map(|_| read_reply(reader)).collect::<std::io::Result<_>>()?,
            )),
        },
        _ => return Err(invalid("an unknown reply type")),
    })
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server dies of SIGKILL too.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on loopback now (the OS picks it; a race with another process is unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
