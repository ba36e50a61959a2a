//! Where tokens are kept: encrypted token files (the SDK's `FileStore`: versioned writes and a
//! lock, so parallel invocations make one refresh), sealed with a key kept in the OS keyring,
//! or, where no keyring answers (headless Linux, containers, CI), in a 0600 key file next to
//! them, said once on stderr. Never plaintext.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use helloflex::FileStore;
use helloflex::{Key, KeyRing};

use crate::failure::Failure;
use crate::profile::Profile;

/// How long the OS keyring may take before the key file is used instead.
const KEYRING_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the key that seals the token files is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    Keyring,
    File(PathBuf),
}

impl std::fmt::Display for KeyPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPlace::Keyring => f.write_str("the OS keyring"),
            KeyPlace::File(path) => write!(f, "the key file {} (mode 0600)", path.display()),
        }
    }
}

/// A profile's token files and their key.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    keys: KeyRing,
    pub key_place: KeyPlace,
    binding: String,
}

impl Storage {
    /// Opens the profile's storage; with `create`, makes the directory and a key if none exists.
    /// Without, `Ok(None)` means nothing was ever stored.
    pub fn open(profile: &Profile, create: bool) -> Result<Option<Self>, Failure> {
        let dir = profile.data_dir();
        let binding = binding(profile);
        let account = binding.clone();
        let key_file = dir.join("key");
        let use_keyring = std::env::var("HELLOFLEX_KEY_STORE").map_or(true, |v| v != "file");
        if create {
            create_private_dir(&dir)?;
        }
        if key_file.exists() {
            let keys = KeyRing::from_file(&key_file).map_err(|e| {
                Failure::server(format!(
                    "the token key cannot be read: {e}; `helloflex logout` starts over"
                ))
            })?;
            return Ok(Some(Self { dir, keys, key_place: KeyPlace::File(key_file), binding }));
        }
        if use_keyring {
            match keyring_get(&account) {
                Keyring::Found(text) => {
                    let keys = KeyRing::parse(&text).map_err(|e| {
                        Failure::server(format!("the token key in the OS keyring is unusable: {e}"))
                    })?;
                    return Ok(Some(Self { dir, keys, key_place: KeyPlace::Keyring, binding }));
                }
                Keyring::Empty if create => {
                    let key = Key::generate("cli").map_err(|e| Failure::server(e.to_string()))?;
                    if keyring_set(&account, &key.to_text()) {
                        let keys = KeyRing::new(key);
                        return Ok(Some(Self { dir, keys, key_place: KeyPlace::Keyring, binding }));
                    }
                }
                Keyring::Empty | Keyring::Unavailable => {}
            }
        }
        // Tokens without their key cannot be opened, and a new key would not open them either.
        if dir.join("user.tokens").exists() || dir.join("client.tokens").exists() {
            return Err(Failure::server(format!(
                "the key that sealed the tokens in {} cannot be found (the key file was \
                 deleted, the OS keyring did not answer or lost it, or HELLOFLEX_KEY_STORE changed)",
                dir.display()
            ))
            .hint("`helloflex logout` deletes those tokens; then sign in again"));
        }
        if !create {
            return Ok(None);
        }
        let keys = KeyRing::create_file(&key_file, "cli")
            .map_err(|e| Failure::server(format!("cannot create the token key: {e}")))?;
        let why = if use_keyring { "no OS keyring answered; " } else { "" };
        eprintln!(
            "helloflex: {why}tokens are encrypted with a key kept in {} (mode 0600)",
            key_file.display()
        );
        Ok(Some(Self { dir, keys, key_place: KeyPlace::File(key_file), binding }))
    }

    /// The Flextell user's tokens.
    pub fn user_store(&self) -> FileStore {
        FileStore::new(self.user_path(), self.keys.clone())
            .bound_to(&format!("{}/user", self.binding))
    }

    /// The HelloFlex client-credentials token, cached between invocations.
    pub fn machine_store(&self) -> FileStore {
        FileStore::new(self.dir.join("client.tokens"), self.keys.clone())
            .bound_to(&format!("{}/client", self.binding))
    }

    pub fn user_path(&self) -> PathBuf {
        self.dir.join("user.tokens")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The files a profile keeps per environment; `key` only where no keyring is used.
const FILES: [&str; 5] =
    ["user.tokens", "client.tokens", "user.tokens.lock", "client.tokens.lock", "key"];

/// Deletes a profile's tokens for its environment (both grants), the key that sealed them (the
/// key file, or its OS keyring entry) and their directory once empty; needs no key, so a
/// profile whose key was lost can still be cleared. Says what it deleted.
pub fn remove_all(profile: &Profile) -> Result<Vec<String>, Failure> {
    let dir = profile.data_dir();
    let mut removed = Vec::new();
    for name in FILES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) if name.ends_with(".lock") => {}
            Ok(()) if name == "key" => removed.push("the key file".to_owned()),
            Ok(()) => removed.push(name.to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::server(format!(
                    "cannot delete {}: {e}",
                    dir.join(name).display()
                )));
            }
        }
    }
    let use_keyring = std::env::var("HELLOFLEX_KEY_STORE").map_or(true, |v| v != "file");
    if use_keyring && keyring_delete(&binding(profile)) {
        removed.push("the key in the OS keyring".to_owned());
    }
    // Only if empty: anything else in it is not ours to delete.
    let _ = std::fs::remove_dir(&dir);
    Ok(removed)
}

/// The name a profile's key and records are bound to: `profile/environment`.
fn binding(profile: &Profile) -> String {
    format!("{}/{}", profile.name, profile.target.key())
}

fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Failure::server(format!("cannot create {}: {e}", dir.display())))
}

enum Keyring {
    Found(String),
    Empty,
    Unavailable,
}

/// Asks the OS keyring on a thread, so a keyring that hangs (a locked D-Bus session on a
/// headless machine) costs at most the timeout.
fn keyring_get(account: &str) -> Keyring {
    let account = account.to_owned();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("keyring".into()).spawn(move || {
        let answer = match keyring::Entry::new("helloflex", &account).and_then(|e| e.get_password())
        {
            Ok(text) => Keyring::Found(text),
            Err(keyring::Error::NoEntry) => Keyring::Empty,
            Err(_) => Keyring::Unavailable,
        };
        let _ = tx.send(answer);
    });
    match spawned {
        Ok(_) => rx.recv_timeout(KEYRING_TIMEOUT).unwrap_or(Keyring::Unavailable),
        Err(_) => Keyring::Unavailable,
    }
}

fn keyring_set(account: &str, secret: &str) -> bool {
    let (account, secret) = (account.to_owned(), secret.to_owned());
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("keyring".into()).spawn(move || {
        let stored =
            keyring::Entry::new("helloflex", &account).and_then(|e| e.set_password(&secret));
        // Read it back: some backends accept a write they cannot keep.
        let kept = stored.is_ok()
            && keyring::Entry::new("helloflex", &account)
                .and_then(|e| e.get_password())
                .is_ok_and(|t| t == secret);
        let _ = tx.send(kept);
    });
    spawned.is_ok() && rx.recv_timeout(KEYRING_TIMEOUT).unwrap_or(false)
}

/// Deletes the keyring entry; whether there was one (a keyring that hangs or is absent: no).
fn keyring_delete(account: &str) -> bool {
    let account = account.to_owned();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("keyring".into()).spawn(move || {
        let deleted =
            keyring::Entry::new("helloflex", &account).and_then(|e| e.delete_credential()).is_ok();
        let _ = tx.send(deleted);
    });
    spawned.is_ok() && rx.recv_timeout(KEYRING_TIMEOUT).unwrap_or(false)
}
