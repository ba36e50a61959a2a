//! [`Watchdog`]: aborts the test process if a scenario hangs.

use std::time::Duration;

/// Aborts the test process if it is not dropped within the limit: for a scenario whose failure
/// would be a hang (a livelock), never for one that is merely slow.
#[derive(Debug)]
pub struct Watchdog {
    /// Dropped with the watchdog, which ends its thread.
    _disarm: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts a watchdog that aborts the process once `limit` has passed without it being
    /// dropped.
    pub fn arm(limit: Duration) -> Self {
        let (disarm, armed) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(limit) {
                eprintln!("the scenario hung for {limit:?}: aborting");
                std::process::abort();
            }
        });
        Self { _disarm: disarm }
    }
}
