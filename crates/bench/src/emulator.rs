//! The emulator the benchmark measures against: a separate process on a free loopback port
//! (on a CPU of its own when pinned), steered through its `/_admin` endpoints.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helloflex_core::{Environment, InsecureLoopback};

use crate::{ROLL, Result, arg};

/// A running emulator, killed when dropped.
pub struct Emulator {
    child: Child,
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the emulator on a free loopback port; with `--pin-emulator <cpu>`, on that CPU alone
/// (through `taskset`).
pub fn start(path: &str) -> Result<Emulator> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = match arg("--pin-emulator") {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &cpu, path]);
            taskset
        }
        None => Command::new(path),
    };
    let child = command
        .args(["--port", &port.to_string(), "--client", &format!("{}:{}", ROLL.0, ROLL.1)])
        .stdout(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the emulator did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Emulator { child, base })
}

/// Calls `/_admin/<path>` (a POST of `body`, or a GET), answering its JSON (null for none).
pub fn admin(base: &str, path: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{base}/_admin/{path}");
    let mut response = match body {
        Some(json) => {
            agent.post(&url).header("content-type", "application/json").send(json.to_string())?
        }
        None => agent.get(&url).call()?,
    };
    let text = response.body_mut().read_to_string()?;
    Ok(if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? })
}

/// Token requests the emulator has counted since its counters were last reset.
pub fn token_requests(base: &str) -> Result<u64> {
    let counters = admin(base, "counters", None)?;
    Ok(counters["token_requests"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum()))
}

/// Resets the emulator's counters.
pub fn reset(base: &str) -> Result<()> {
    admin(base, "counters/reset", Some(serde_json::json!({})))?;
    Ok(())
}

/// The emulator at `base` as the SDK's environment.
pub fn environment(base: &str) -> Result<Environment> {
    Ok(Environment::custom(base, InsecureLoopback::Allow)?)
}
