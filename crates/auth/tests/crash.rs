//! A process killed between receiving a rotated token set and storing it: a child process
//! (this test binary, re-run) aborts inside the store write. After the "restart" the store holds
//! the previous complete set, loads without a panic, and the burnt refresh token surfaces as a
//! typed "re-authorization required", never a panic or a loop.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::*;
use helloflex_testkit::{Passthrough, StoreHooks, SwapCall};
use support::{FakeServer, config};

const CHILD: &str = "HELLOFLEX_CRASH_CHILD_DIR";

/// Aborts the process the moment a rotated set is about to be written.
#[derive(Debug)]
struct AbortOnRotation;

impl StoreHooks for AbortOnRotation {
    fn swap(&self, call: SwapCall<'_>) -> Result<Swap, StoreError> {
        let (current, new) = (call.inner.load()?.record, call.new);
        let rotating = current.as_ref().is_some_and(|c| {
            c.claim.is_some()
                && new.claim.is_none()
                && c.tokens.as_ref().map(|t| &t.refresh_token)
                    != new.tokens.as_ref().map(|t| &t.refresh_token)
        });
        if rotating {
            std::process::abort(); // killed after the server rotated, before anything was stored
        }
        call.pass()
    }
}

fn child(dir: &Path) {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let file = FileStore::new(dir.join("tokens.json"), support::keys());
    let store = Arc::new(Passthrough::new(file, AbortOnRotation));
    let m = ManagerBuilder::authorization_code(config(), store)
        .clock(clock.clone())
        .blocking(server.clone());
    let (url, pending) = m.start_authorization().unwrap();
    m.complete_authorization(&pending, &server.approve(&url)).unwrap();
    clock.advance(Duration::from_secs(61));
    let _ = m.token(); // refreshes, then aborts while storing
    unreachable!("the store write should have aborted the process");
}

#[test]
fn killed_between_receiving_and_storing_a_rotation() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let dir = std::env::temp_dir().join(format!("helloflex-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "killed_between_receiving_and_storing_a_rotation",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have been killed mid-rotation");

    // Restart: the store holds the complete set from before the rotation.
    let path: PathBuf = dir.join("tokens.json");
    let stored = FileStore::new(&path, support::keys()).load().unwrap();
    let record = stored.record.expect("a complete token set");
    assert!(record.tokens.expect("tokens").refresh_token.is_some());
    assert!(record.claim.is_some(), "the dead process's claim is still there");
    // Only the token file, its lock files, and no half-written temporary file.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp."), "leftover {name}");
    }
    // The refresh token in it was burnt by the server's rotation: a typed error, no panic.
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    server.sleeps_advance(&clock);
    let store = FileStore::new(&path, support::keys());
    let m = ManagerBuilder::authorization_code(config(), Arc::new(store))
        .clock(clock.clone())
        .blocking(server);
    // The dead process's claim is taken over once this one watched it unchanged for its whole
    // budget (the waits move the manual clock); the token it presents was burnt.
    clock.advance(Duration::from_secs(600));
    assert!(m.token().unwrap_err().requires_reauthorization());
    std::fs::remove_dir_all(&dir).unwrap();
}
