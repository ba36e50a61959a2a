//! The store seam every store implements (the built-in ones here; remote stores plug into the
//! same contract): versioned compare-and-swap, and a refresh lease with an expiry and a fence
//! that refuses a write from a holder whose lease lapsed and went to someone else.

use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::{AccessToken, RefreshToken};

fn keys() -> KeyRing {
    KeyRing::new(Key::new("k1", [1u8; 32]).unwrap())
}

fn tokens(n: u32) -> StoredTokens {
    let json = format!(
        r#"{{"access_token":"at{n}","refresh_token":"rt{n}","expires_at_unix_ms":{}}}"#,
        4_000_000_000_000u64
    );
    serde_json::from_str(&json).unwrap()
}

fn lease_and_fencing(store: &dyn TokenStore, clock: &ManualClock) {
    assert!(store.load().unwrap().is_none());
    assert_eq!(store.swap(0, &tokens(1), None).unwrap(), Swap::Stored { version: 1 });
    // A write planned from an older version is refused.
    assert_eq!(store.swap(0, &tokens(2), None).unwrap(), Swap::Conflict);
    let LeaseAttempt::Acquired(a) = store.lease(Duration::from_secs(10)).unwrap() else {
        panic!("the lease is free")
    };
    assert!(matches!(store.lease(Duration::from_secs(10)).unwrap(), LeaseAttempt::Busy { .. }));
    // A's lease lapses; B takes it, and A's late write is fenced off.
    clock.advance(Duration::from_secs(11));
    let LeaseAttempt::Acquired(b) = store.lease(Duration::from_secs(10)).unwrap() else {
        panic!("a lapsed lease is free")
    };
    assert!(b.fence > a.fence);
    assert_eq!(store.swap(1, &tokens(3), Some(&a)).unwrap(), Swap::Conflict, "stale holder");
    assert_eq!(store.swap(1, &tokens(4), Some(&b)).unwrap(), Swap::Stored { version: 2 });
    store.release(&b).unwrap();
    assert!(matches!(store.lease(Duration::from_secs(10)).unwrap(), LeaseAttempt::Acquired(_)));
    let record = store.load().unwrap().unwrap();
    assert_eq!(record.version, 2);
    assert_eq!(record.tokens.access_token, AccessToken::new("at4"));
    assert_eq!(record.tokens.refresh_token, Some(RefreshToken::new("rt4")));
}

#[test]
fn memory_store_leases_and_fences() {
    let clock = Arc::new(ManualClock::new());
    lease_and_fencing(&MemoryStore::with_clock(clock.clone()), &clock);
}

#[test]
fn file_store_leases_and_fences_and_keeps_its_files_private() {
    let dir = std::env::temp_dir().join(format!("helloflex-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clock = Arc::new(ManualClock::new());
    let store = FileStore::new(dir.join("tokens.json"), keys()).with_clock(clock.clone());
    lease_and_fencing(&store, &clock);
    #[cfg(unix)]
    for name in ["tokens.json", "tokens.json.lease", "tokens.json.lock"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    // A second handle on the same file (another process) sees the same lease (the last one
    // taken above is still held) and versions.
    let other = FileStore::new(dir.join("tokens.json"), keys()).with_clock(clock.clone());
    assert!(matches!(other.lease(Duration::from_secs(10)).unwrap(), LeaseAttempt::Busy { .. }));
    assert_eq!(other.load().unwrap().unwrap().version, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_temp_file_left_with_loose_permissions_does_not_loosen_the_token_file() {
    let dir = std::env::temp_dir().join(format!("helloflex-tmpmode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let tmp = dir.join(format!("tokens.json.tmp.{}", std::process::id()));
    std::fs::write(&tmp, b"left over").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let store = FileStore::new(&path, keys());
    store.swap(0, &tokens(1), None).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
