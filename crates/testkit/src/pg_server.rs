//! A real PostgreSQL server (Debian's `postgresql` package), made with `initdb` in its own
//! temporary directory and started with `pg_ctl` on a free loopback port; stopped (and its
//! directory removed) when dropped. Used by the SQL store's tests (`crates/store-sql`) and the
//! fleet tests (`crates/fleet`). As root, every command runs as the `postgres` user
//! (`initdb` refuses root). Raw SQL goes through `psql`, as an operator's would.
//!
//! Beyond start and stop, it does to a server what operations do to one: a restart, a crash
//! (`pg_ctl stop -m immediate`: every server process killed, crash recovery from the WAL on the
//! next start), a backup of the data directory (stopped, or online with `pg_basebackup`) and a
//! restore from it (a rollback), a new empty cluster in place of the old (the data lost), a
//! pause of every server process (`SIGSTOP`: a hung server).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::redis_server::free_port;

/// A running PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
    running: bool,
    /// Online backups taken so far (each gets its own directory).
    backups: u32,
    /// Whether the server offers TLS (`server.crt` and `server.key` in its data directory).
    tls: bool,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: apt-get install postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql")
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl PgServer {
    /// Starts one that offers TLS with this certificate chain and key (PEM), beside clear
    /// text (trust authentication either way).
    pub fn start_tls(cert: &str, key: &str) -> Self {
        let mut server = Self::start();
        server.stop();
        for (name, pem) in [("server.crt", cert), ("server.key", key)] {
            let path = server.data_dir().join(name);
            std::fs::write(&path, pem).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            if server.as_postgres {
                let status = Command::new("chown").arg("postgres:postgres").arg(&path).status();
                assert!(status.unwrap().success());
            }
        }
        server.tls = true;
        server.begin();
        server
    }

    /// Starts one (trust authentication, `fsync=off`: a test server); panics with a hint if
    /// PostgreSQL is not installed.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("helloflex-pg-").tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status =
                Command::new("chown").arg("postgres:postgres").arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let server = Self {
            bin: bin_dir(),
            dir,
            port: free_port(),
            as_postgres,
            running: false,
            backups: 0,
            tls: false,
        };
        server.run_ok(
            "initdb",
            &["-D", &server.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        );
        let mut server = server;
        server.begin();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.command(tool).args(args).current_dir(self.dir.path()).output().unwrap()
    }

    fn run_ok(&self, tool: &str, args: &[&str]) -> Output {
        Self::ok(tool, args, self.run(tool, args))
    }

    fn ok(tool: &str, args: &[&str], out: Output) -> Output {
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn spare(&self) -> PathBuf {
        self.dir.path().join("spare")
    }

    /// Makes an empty cluster beside the running one (`initdb` takes a second or two), for
    /// [`PgServer::replace_with_an_empty_cluster`] to put in place at once.
    pub fn prepare_an_empty_cluster(&self) {
        let spare = self.spare().display().to_string();
        self.run_ok(
            "initdb",
            &["-D", &spare, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        );
    }

    /// Puts a new, empty cluster in the data directory (the server stopped; the one prepared
    /// by [`PgServer::prepare_an_empty_cluster`], or one made now): everything the old one
    /// held is gone, as when a database is lost and a new one is set up at the same address.
    pub fn replace_with_an_empty_cluster(&mut self) {
        assert!(!self.running, "stop or crash the server first");
        std::fs::remove_dir_all(self.data_dir()).unwrap();
        if self.spare().exists() {
            std::fs::rename(self.spare(), self.data_dir()).unwrap();
        } else {
            self.run_ok(
                "initdb",
                &["-D", &self.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            );
        }
    }

    /// Starts the server on its port (loopback only, its socket in its directory).
    pub fn begin(&mut self) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            options.push_str(" -c ssl=on");
        }
        let log = self.dir.path().join("log").display().to_string();
        self.run_ok("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
        self.running = true;
    }

    /// Stops the server (fast: connections are cut, nothing is lost).
    pub fn stop(&mut self) {
        self.run_ok("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        self.running = false;
    }

    /// Crashes the server: `pg_ctl stop -m immediate` kills every server process without a
    /// checkpoint; the next [`PgServer::begin`] recovers from the WAL (committed transactions
    /// are kept: the host did not crash).
    pub fn crash(&mut self) {
        self.resume();
        self.run_ok("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        self.running = false;
    }

    /// A clean restart (a fast stop, then a start).
    pub fn restart(&mut self) {
        self.stop();
        self.begin();
    }

    /// The server's address, as a store takes it (the password is ignored: trust
    /// authentication; it is there for tests that check no error names it).
    pub fn url(&self) -> String {
        format!("postgres://postgres:hunter2-password@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a client tool (`psql`, `pg_basebackup`) against the server, as the `postgres` user
    /// over loopback TCP, with `args` after the connection's; fails the test if it fails.
    fn client(&self, tool: &str, args: &[&str]) -> Output {
        Self::ok(tool, args, self.client_output(tool, args))
    }

    fn client_output(&self, tool: &str, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
        all.extend_from_slice(args);
        self.run(tool, &all)
    }

    /// Runs `sql` through `psql`; its output, unaligned, tuples only. A statement PostgreSQL
    /// aborts to break a deadlock with the stores' own transactions (a `DROP TABLE` of several
    /// tables takes its locks in another order than a store's transaction does) is rolled back
    /// whole, and run again as an operator would: a few times, then the test fails.
    pub fn sql(&self, sql: &str) -> String {
        let args = ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql];
        let mut out = self.client_output("psql", &args);
        for _ in 1..5 {
            if out.status.success()
                || !String::from_utf8_lossy(&out.stderr).contains("deadlock detected")
            {
                break;
            }
            out = self.client_output("psql", &args);
        }
        let out = Self::ok("psql", &args, out);
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// Copies the data directory (the server stopped), as a file-system backup; returns it.
    pub fn backup(&mut self) -> PathBuf {
        self.stop();
        let backup = self.dir.path().join("backup");
        let status = Command::new("cp").arg("-a").arg(self.data_dir()).arg(&backup).status();
        assert!(status.unwrap().success());
        self.begin();
        backup
    }

    /// Takes a backup of the running server without stopping it (`pg_basebackup`, the WAL
    /// streamed beside it: the data as of the backup's end), as a nightly backup job does;
    /// returns it. A hundred-odd milliseconds on a test server.
    pub fn online_backup(&mut self) -> PathBuf {
        let backup = self.dir.path().join(format!("online-backup-{}", self.backups));
        self.backups += 1;
        let target = backup.display().to_string();
        let args = ["-D", &target, "-X", "stream", "--checkpoint=fast", "--no-sync"];
        self.client("pg_basebackup", &args);
        backup
    }

    /// Restarts the server from `backup` (a rollback to it).
    pub fn restore(&mut self, backup: &Path) {
        self.stop();
        std::fs::remove_dir_all(self.data_dir()).unwrap();
        let status = Command::new("cp").arg("-a").arg(backup).arg(self.data_dir()).status();
        assert!(status.unwrap().success());
        self.begin();
    }

    /// The same, moving `backup` in place instead of copying it (it is used up): the server is
    /// down only while it stops and starts.
    pub fn restore_moving(&mut self, backup: &Path) {
        self.stop();
        let old = self.dir.path().join("replaced");
        std::fs::rename(self.data_dir(), &old).unwrap();
        std::fs::rename(backup, self.data_dir()).unwrap();
        self.begin();
        std::fs::remove_dir_all(old).unwrap();
    }

    /// The server's processes: the postmaster and its children.
    fn pids(&self) -> Vec<String> {
        let pid = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap();
        let postmaster = pid.lines().next().unwrap().trim().to_owned();
        let out = Command::new("ps").args(["-o", "pid=", "--ppid", &postmaster]).output().unwrap();
        let mut pids: Vec<String> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
        pids.push(postmaster);
        pids
    }

    fn signal(&self, signal: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args([signal, &pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    /// Stops every process of the server (`SIGSTOP`): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues every process of the server (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.resume();
            let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        }
    }
}
