//! A real `redis-server` (Debian's package), started on a free loopback port with its own
//! temporary directory, stopped (and its directory removed) when dropped. Shared by this crate's
//! tests and the fleet tests (`crates/fleet`), which include this file.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// `--tls-*` arguments: the server speaks TLS only.
    tls: Vec<String>,
}

impl RedisServer {
    /// Starts one; panics with a hint if `redis-server` is not installed.
    pub fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("helloflex-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { child: None, port, dir, tls: Vec::new() };
        server.spawn();
        server
    }

    /// Starts one that speaks TLS only (`rediss://`), with the PEM files of its certificate,
    /// key and CA, written in its directory; clients need no certificate of their own.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("helloflex-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut tls = vec!["--tls-auth-clients".to_owned(), "no".to_owned()];
        for (flag, name, pem) in [
            ("--tls-cert-file", "cert.pem", cert),
            ("--tls-key-file", "key.pem", key),
            ("--tls-ca-cert-file", "ca.pem", ca),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
            tls.extend([flag.to_owned(), dir.join(name).display().to_string()]);
        }
        let mut server = Self { child: None, port, dir, tls };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let ports = if self.tls.is_empty() {
            ["--port", &port, "", ""]
        } else {
            ["--port", "0", "--tls-port", &port]
        };
        let child = Command::new("redis-server")
            .args(ports.iter().filter(|a| !a.is_empty()))
            .args(["--bind", "127.0.0.1"])
            .args(&self.tls)
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
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

    /// Stops the server (its data is kept in its directory, append-only file synced).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (what it had stored comes back).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on loopback now (the OS picks it; a race with another process is unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
