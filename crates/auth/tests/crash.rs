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
use helloflex_core::RefreshToken;
use support::{FakeServer, config};

const CHILD: &str = "HELLOFLEX_CRASH_CHILD_DIR";

/// Aborts the process the moment a rotated set is about to be written.
#[derive(Debug)]
struct AbortOnRotation(FileStore);

impl TokenStore for AbortOnRotation {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.0.load()
    }
    fn compare_and_swap(
        &self,
        expected: Option<&RefreshToken>,
        new: &StoredTokens,
    ) -> Result<bool, StoreError> {
        if expected.is_some() {
            std::process::abort(); // killed after the server rotated, before anything was stored
        }
        self.0.compare_and_swap(expected, new)
    }
    fn lock_for_refresh(&self) -> Result<Option<StoreLock>, StoreError> {
        self.0.lock_for_refresh()
    }
}

fn child(dir: &Path) {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(AbortOnRotation(FileStore::new(dir.join("tokens.json"))));
    let m = BlockingTokenManager::authorization_code(
        config(),
        store,
        server.clone(),
        clock.clone(),
        ManagerOptions::default(),
    )
    .unwrap();
    let (url, pending) = m.start_authorization().unwrap();
    m.complete_authorization(pending, &server.approve(&url)).unwrap();
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
    let stored = FileStore::new(&path).load().unwrap().expect("a complete token set");
    assert!(stored.refresh_token.is_some());
    // Only the token file, its lock files, and no half-written temporary file.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp."), "leftover {name}");
    }
    // The refresh token in it was burnt by the server's rotation: a typed error, no panic.
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let m = BlockingTokenManager::authorization_code(
        config(),
        Arc::new(FileStore::new(&path)),
        server,
        clock.clone(),
        ManagerOptions::default(),
    )
    .unwrap();
    clock.advance(Duration::from_secs(61));
    assert!(m.token().unwrap_err().requires_reauthorization());
    std::fs::remove_dir_all(&dir).unwrap();
}
