//! Tokens at rest: a token file written with default settings holds no token bytes; a wrong
//! key, a tampered, truncated, moved or plaintext file, or an unknown version is a typed error
//! that names the problem (never the content) and leaves the file untouched; a record under an
//! old key opens and is sealed again under the active one on its next write.

use std::path::{Path, PathBuf};

use helloflex_auth::*;

const ACCESS: &str = "CANARYaccess0123456789abcdef";
const REFRESH: &str = "CANARYrefresh0123456789abcdef";

fn tokens(n: u32) -> StoredTokens {
    let json = format!(
        r#"{{"access_token":"{ACCESS}{n}","refresh_token":"{REFRESH}{n}","expires_at_unix_ms":4000000000000}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn key(id: &str, byte: u8) -> Key {
    Key::new(id, [byte; 32]).unwrap()
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("helloflex-sealed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("tokens")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sealed_problem(result: Result<Loaded, StoreError>) -> OpenError {
    match result {
        Err(StoreError { kind: StoreErrorKind::DoesNotOpen(problem), op: "read", .. }) => problem,
        other => panic!("expected a sealed-record error, got {other:?}"),
    }
}

/// `load` fails with `problem`, and a write attempted on top leaves the file as it was.
fn refused_untouched(store: &FileStore, path: &Path, problem: OpenError) {
    let before = std::fs::read(path).unwrap();
    let error = store.load().unwrap_err();
    assert_eq!(sealed_problem(Err(error.clone())), problem);
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(store.swap(1, &Record::new(tokens(9), 2)).is_err(), "nothing is written over it");
    assert_eq!(std::fs::read(path).unwrap(), before, "the file is untouched");
}

#[test]
fn a_token_file_holds_no_token_bytes() {
    let dir = Dir::new("canary");
    let store = FileStore::new(dir.file(), KeyRing::new(key("k1", 1)));
    store.swap(0, &Record::new(tokens(1), 1)).unwrap();
    let raw = std::fs::read(dir.file()).unwrap();
    for needle in ["CANARY", "access_token", "refresh_token"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the file"
        );
    }
    assert_eq!(
        store.load().unwrap().into_tokens().unwrap().access_token.expose_secret(),
        format!("{ACCESS}1")
    );
    // Two writes of the same set differ (a fresh nonce each time).
    store.swap(1, &Record::new(tokens(1), 2)).unwrap();
    assert_ne!(std::fs::read(dir.file()).unwrap(), raw);
}

#[test]
fn a_wrong_key_a_tampered_or_truncated_file_and_an_unknown_version_are_typed_errors() {
    let dir = Dir::new("bad");
    let path = dir.file();
    FileStore::new(&path, KeyRing::new(key("k1", 1))).swap(0, &Record::new(tokens(1), 1)).unwrap();
    let good = std::fs::read(&path).unwrap();
    // The same key id with other bytes.
    refused_untouched(
        &FileStore::new(&path, KeyRing::new(key("k1", 2))),
        &path,
        OpenError::Unauthentic,
    );
    // A key id the ring does not hold.
    refused_untouched(
        &FileStore::new(&path, KeyRing::new(key("k2", 1))),
        &path,
        OpenError::UnknownKey,
    );
    let store = FileStore::new(&path, KeyRing::new(key("k1", 1)));
    // One bit flipped in the ciphertext.
    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &tampered).unwrap();
    refused_untouched(&store, &path, OpenError::Unauthentic);
    // Cut short, in the header and in the body.
    for len in [3, 5, 10, good.len() - 20] {
        std::fs::write(&path, &good[..len]).unwrap();
        let problem = sealed_problem(store.load());
        assert!(
            matches!(problem, OpenError::Truncated | OpenError::NotSealed | OpenError::Unauthentic),
            "{len}: {problem:?}"
        );
    }
    // A version from the future.
    let mut future = good.clone();
    future[4] = 9;
    std::fs::write(&path, &future).unwrap();
    refused_untouched(&store, &path, OpenError::UnknownVersion);
    // A plaintext token file is refused, not read.
    std::fs::write(&path, br#"{"access_token":"x","refresh_token":"y","expires_at_unix_ms":1}"#)
        .unwrap();
    refused_untouched(&store, &path, OpenError::NotSealed);
}

#[test]
fn a_record_moved_to_another_file_or_identity_does_not_open() {
    let dir = Dir::new("moved");
    let keys = || KeyRing::new(key("k1", 1));
    FileStore::new(dir.file(), keys()).swap(0, &Record::new(tokens(1), 1)).unwrap();
    let other = dir.0.join("other");
    std::fs::copy(dir.file(), &other).unwrap();
    refused_untouched(&FileStore::new(&other, keys()), &other, OpenError::Unauthentic);
    let bound = FileStore::new(dir.file(), keys()).bound_to("client-a");
    assert_eq!(sealed_problem(bound.load()), OpenError::Unauthentic, "written unbound");
    // The same file through another spelling of its path opens.
    let spelled = dir.0.join(".").join("tokens");
    assert!(FileStore::new(spelled, keys()).load().unwrap().record.is_some());
}

#[test]
fn an_old_key_opens_and_the_next_write_uses_the_active_one() {
    let dir = Dir::new("rotate");
    FileStore::new(dir.file(), KeyRing::new(key("old", 1)))
        .swap(0, &Record::new(tokens(1), 1))
        .unwrap();
    let ring = KeyRing::new(key("new", 2)).with_older(key("old", 1));
    assert!(!ring.is_current(&std::fs::read(dir.file()).unwrap()));
    let store = FileStore::new(dir.file(), ring.clone());
    assert_eq!(store.load().unwrap().record.unwrap().version, 1);
    store.swap(1, &Record::new(tokens(2), 2)).unwrap();
    assert!(ring.is_current(&std::fs::read(dir.file()).unwrap()), "re-sealed under the active key");
    // The old key alone no longer opens it.
    assert_eq!(
        sealed_problem(FileStore::new(dir.file(), KeyRing::new(key("old", 1))).load()),
        OpenError::UnknownKey
    );
}

#[test]
fn key_rings_parse_from_text_env_and_private_files_only() {
    let a = key("a", 1);
    let b = key("b", 2);
    let text = format!("{},{}", a.to_text().as_str(), b.to_text().as_str());
    let ring = KeyRing::parse(&text).unwrap();
    assert_eq!(ring.active_id(), "a");
    assert!(!format!("{ring:?} {a:?}").contains(&a.to_text()[2..]), "no key bytes in Debug");
    for bad in ["", "a", "a:not base64!", "a:AAAA", ":AAAA", "a b:AAAA"] {
        assert!(matches!(KeyRing::parse(bad), Err(KeyError::Malformed(_))), "{bad:?}");
    }
    assert!(matches!(
        KeyRing::from_env("HELLOFLEX_NO_SUCH_VARIABLE"),
        Err(KeyError::MissingVariable(_))
    ));
    let dir = Dir::new("keyfile");
    let path = dir.0.join("key");
    let created = KeyRing::create_file(&path, "k").unwrap();
    let read = KeyRing::from_file(&path).unwrap();
    assert_eq!(read.active_id(), created.active_id());
    assert!(
        matches!(KeyRing::create_file(&path, "k"), Err(KeyError::Io { .. })),
        "never overwritten"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::from_file(&path), Err(KeyError::Permissions(_))));
    }
}
