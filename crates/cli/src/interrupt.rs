//! Ctrl-C (and SIGTERM, SIGHUP) while a command runs: a token refresh in flight is stored
//! before the process exits. Killed mid-refresh, the process would lose the refresh token the
//! server just rotated; the next command would present the spent one, and the server would
//! revoke the sign-in. A second Ctrl-C exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

type Client = helloflex::blocking::Client;

/// The client the running command uses, closed on an interrupt.
static ACTIVE: Mutex<Option<Client>> = Mutex::new(None);

/// How long an interrupted command waits for a token request in flight.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(30);

/// Installs the handler (once, at start).
pub fn install() {
    // Without a handler (it could not be installed) an interrupt kills as before.
    let _ = ctrlc::set_handler(on_interrupt);
}

/// `client` is closed before the process exits on an interrupt.
pub fn closes(client: &Client) {
    *active() = Some(client.clone());
}

fn active() -> MutexGuard<'static, Option<Client>> {
    // The guarded value is a plain handle: a panic elsewhere leaves nothing half-changed.
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn on_interrupt() {
    static AGAIN: AtomicBool = AtomicBool::new(false);
    if AGAIN.swap(true, Ordering::SeqCst) {
        std::process::exit(130);
    }
    let client = active().take();
    if let Some(client) = client {
        eprintln!(
            "\nhelloflex: interrupted; storing a token refresh in flight first (Ctrl-C again to \
             quit at once)"
        );
        if !client.close(CLOSE_WITHIN) {
            eprintln!("helloflex: the refresh did not finish; `helloflex login` if asked to");
        }
    }
    std::process::exit(130);
}
