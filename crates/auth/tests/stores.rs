//! The store seam every store implements (the built-in ones here; remote stores plug into the
//! same contract): a versioned record, compare-and-swap on a version the writer picks above
//! the one it read, and everything a fleet agrees on (tokens, claim, completed authorizations)
//! inside the record.

use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::RefreshToken;
use helloflex_testkit::contract::{
    compare_and_swap, every_u64_version, racing_writers, whole_record_and_fencing,
};

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

/// The contract every store keeps (`helloflex_testkit::contract`).
#[test]
fn memory_store_keeps_the_store_contract() {
    let store = MemoryStore::new();
    compare_and_swap(&store);
    assert!(store.load().unwrap().epoch_age.is_none(), "memory loses nothing on its own");
    every_u64_version(&MemoryStore::new());
    let shared = std::sync::Arc::new(MemoryStore::new());
    whole_record_and_fencing(&*shared, &*shared);
    let racing = std::sync::Arc::new(MemoryStore::new());
    racing_writers(|| racing.clone());
}

#[test]
fn file_store_keeps_the_store_contract_and_its_files_private() {
    let dir = std::env::temp_dir().join(format!("helloflex-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileStore::new(dir.join("tokens.json"), keys());
    compare_and_swap(&store);
    let open = |name: &str| FileStore::new(dir.join(name), keys());
    every_u64_version(&open("big.json"));
    whole_record_and_fencing(&open("user.json"), &open("user.json"));
    racing_writers(|| std::sync::Arc::new(open("racing.json")));
    #[cfg(unix)]
    for name in ["tokens.json", "tokens.json.lock"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    // A second handle on the same file (another process) sees the same record.
    let other = FileStore::new(dir.join("tokens.json"), keys());
    assert_eq!(other.load().unwrap().record.unwrap().version, 1_760_000_000_000);
    assert!(other.load().unwrap().epoch_age.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A token file written before records held claims (a token set beside its version) is read
/// as a record.
#[test]
fn a_file_from_before_claims_is_read_as_a_record() {
    let dir = std::env::temp_dir().join(format!("helloflex-legacy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    std::fs::write(
        &path,
        br#"{"access_token":"at9","refresh_token":"rt9","expires_at_unix_ms":4000000000000,"version":3}"#,
    )
    .unwrap();
    let store = FileStore::plaintext_insecure(&path);
    let record = store.load().unwrap().record.unwrap();
    assert_eq!(record.version, 3);
    assert_eq!(record.tokens.unwrap().refresh_token, Some(RefreshToken::new("rt9")));
    assert!(record.claim.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A process stuck holding the file's lock does not stall the others: a call waits at most the
/// lock timeout, then fails, typed.
#[test]
fn a_lock_held_elsewhere_is_waited_for_only_so_long() {
    let dir = std::env::temp_dir().join(format!("helloflex-locked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileStore::new(dir.join("tokens.json"), keys())
        .with_lock_timeout(Duration::from_millis(200));
    store.swap(0, &Record::new(tokens(1), 1)).unwrap();
    // Another holder of the lock (a separate open file description: flock is per description).
    let held = std::fs::OpenOptions::new().write(true).open(dir.join("tokens.json.lock")).unwrap();
    held.lock().unwrap();
    #[allow(clippy::disallowed_methods)] // measuring a real wait
    let started = std::time::Instant::now();
    let error = store.swap(1, &Record::new(tokens(2), 2)).unwrap_err();
    assert!(
        matches!(error, StoreError { op: "lock", kind: StoreErrorKind::TimedOut, .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Reads need no lock: the record is still there.
    assert_eq!(store.load().unwrap().record.unwrap().version, 1);
    held.unlock().unwrap();
    assert!(matches!(store.swap(1, &Record::new(tokens(2), 2)).unwrap(), Swap::Stored { .. }));
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
    store.swap(0, &Record::new(tokens(1), 1)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file that parses as JSON but is not a token record (something else's file, tokens with a
/// field of the wrong type) is refused as corrupt and never replaced: read as "nothing stored",
/// the next write would have overwritten it.
#[test]
fn a_json_file_that_is_not_a_token_record_is_refused_and_kept() {
    let dir = std::env::temp_dir().join(format!("helloflex-not-a-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let store = FileStore::plaintext_insecure(&path);
    for content in [
        &b"{}"[..],
        b"{\"hello\": \"world\"}",
        b"{\"access_token\": \"at\", \"expires_at_unix_ms\": \"soon\"}",
        b"{\"version\": 0, \"tokens\": null}",
    ] {
        std::fs::write(&path, content).unwrap();
        let error = store.load().unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::Corrupt, "{error:?}");
        assert!(store.swap(0, &Record::new(tokens(1), 1)).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), content, "left as it was");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
