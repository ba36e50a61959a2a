//! `helloflex config get|set|unset|list|path`: the profile's settings in config.toml, edited in
//! place (comments and order kept), checked before they are written, never a secret.

use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, value};

use crate::args::ConfigAction;
use crate::failure::Failure;
use crate::profile::{Profile, parse_config, parse_env};
use crate::storage::Storage;

/// What a setting holds, so `set` can check it.
#[derive(Clone, Copy)]
enum Kind {
    Env,
    Text,
    Scopes,
    Url,
}

/// Every setting of a profile (`[profiles.NAME]`), with what it means.
const SETTINGS: [(&str, Kind, &str); 8] = [
    (
        "env",
        Kind::Env,
        "where calls go: sandbox, live, emulator or an https:// base URL (default: sandbox)",
    ),
    ("client_id", Kind::Text, "the HelloFlex client id (its secret: HELLOFLEX_CLIENT_SECRET)"),
    ("scopes", Kind::Scopes, "the HelloFlex scopes to ask for"),
    (
        "flextell.client_id",
        Kind::Text,
        "the Flextell app's client id (its secret, if any: FLEXTELL_CLIENT_SECRET)",
    ),
    ("flextell.authorize_url", Kind::Url, "Flextell's authorization endpoint"),
    ("flextell.token_url", Kind::Url, "Flextell's token endpoint"),
    ("flextell.api_url", Kind::Url, "the Flextell API's base URL"),
    ("flextell.scopes", Kind::Scopes, "the Flextell scopes to ask for at sign-in"),
];

/// Runs `helloflex config ...`.
pub fn run(profile: &Profile, action: &ConfigAction) -> Result<(), Failure> {
    let path = profile.dirs.config_file();
    match action {
        ConfigAction::Path => {
            crate::say(&format!("config: {}\n", path.display()));
            crate::say(&format!("tokens: {}\n", profile.data_dir().display()));
            match Storage::open(profile, false)? {
                Some(storage) => crate::say(&format!("key:    {}\n", storage.key_place)),
                None => crate::say("key:    none yet (made at the first sign-in or token)\n"),
            }
        }
        ConfigAction::List => {
            let document = read(&path)?;
            crate::say(&format!("# profile '{}' in {}\n", profile.name, path.display()));
            for (key, _, help) in SETTINGS {
                match get(&document, &profile.name, key) {
                    Some(shown) => crate::say(&format!("{key} = {shown}\n    {help}\n")),
                    None => crate::say(&format!("{key} (not set)\n    {help}\n")),
                }
            }
        }
        ConfigAction::Get { key } => {
            setting(key)?;
            if let Some(shown) = get(&read(&path)?, &profile.name, key) {
                crate::say(&format!("{shown}\n"));
            }
        }
        ConfigAction::Set { key, value: text } => {
            let kind = setting(key)?;
            let item = check(kind, key, text, profile)?;
            edit(&path, |document| {
                *slot(document, &profile.name, key)? = item;
                Ok(())
            })?;
            eprintln!("Set {key} for profile '{}' in {}.", profile.name, path.display());
        }
        ConfigAction::Unset { key } => {
            setting(key)?;
            edit(&path, |document| {
                let (table, last) = parent(document, &profile.name, key)?;
                table.remove(last);
                Ok(())
            })?;
            eprintln!("Unset {key} for profile '{}'.", profile.name);
        }
    }
    Ok(())
}

/// After a sign-in with `--env`: that environment becomes the profile's default, as `gh auth
/// login` makes its host the default. Returns what changed, for the person.
pub fn remember_env(profile: &Profile) -> Result<Option<String>, Failure> {
    let chosen = profile.env_setting();
    if profile.configured_env() == Some(chosen.as_str()) {
        return Ok(None);
    }
    let path = profile.dirs.config_file();
    edit(&path, |document| {
        *slot(document, &profile.name, "env")? = value(chosen.as_str());
        Ok(())
    })?;
    Ok(Some(format!(
        "{chosen} is now the default environment of profile '{}' (`helloflex config set env ...` \
         changes it; --env overrides it per call)",
        profile.name
    )))
}

fn setting(key: &str) -> Result<Kind, Failure> {
    if key.contains("secret") || key.contains("password") {
        return Err(Failure::usage(format!(
            "'{key}': secrets are never kept in config.toml; set HELLOFLEX_CLIENT_SECRET or \
             FLEXTELL_CLIENT_SECRET in the environment"
        )));
    }
    SETTINGS.iter().find(|(name, _, _)| *name == key).map(|(_, kind, _)| *kind).ok_or_else(|| {
        let names: Vec<&str> = SETTINGS.iter().map(|(name, _, _)| *name).collect();
        Failure::usage(format!("'{key}' is not a setting; the settings are: {}", names.join(", ")))
    })
}

/// The value as it will be written, once it is known to work.
fn check(kind: Kind, key: &str, text: &str, profile: &Profile) -> Result<Item, Failure> {
    let text = text.trim();
    let context = |e: Failure| e.context(key);
    match kind {
        Kind::Env => {
            parse_env(text, &profile.dirs).map_err(context)?;
            Ok(value(text.trim_end_matches('/')))
        }
        Kind::Text if text.is_empty() => Err(Failure::usage(format!("{key}: must not be empty"))),
        Kind::Text => Ok(value(text)),
        Kind::Url => {
            helloflex::Endpoint::parse(text, helloflex::InsecureLoopback::Allow)
                .map_err(|e| Failure::usage(format!("{key}: {e}")))?;
            Ok(value(text))
        }
        Kind::Scopes => {
            let scopes: Array = text.split([' ', ',']).filter(|s| !s.is_empty()).collect();
            Ok(value(scopes))
        }
    }
}

/// The value of `key` for `profile`, as `get` prints it (scopes space-separated).
fn get(document: &DocumentMut, profile: &str, key: &str) -> Option<String> {
    let mut item = document.get("profiles")?.get(profile)?;
    for part in key.split('.') {
        item = item.get(part)?;
    }
    match item.as_value()? {
        toml_edit::Value::String(s) => Some(s.value().clone()),
        toml_edit::Value::Array(a) => {
            Some(a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "))
        }
        other => Some(other.to_string().trim().to_owned()),
    }
}

fn read(path: &Path) -> Result<DocumentMut, Failure> {
    read_text(path)?.parse::<DocumentMut>().map_err(|e| {
        Failure::usage(format!("{}: {}", path.display(), e.to_string().trim_end()))
            .hint("it is not TOML there: fix that line by hand")
    })
}

fn read_text(path: &Path) -> Result<String, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Failure::usage(format!("{}: {e}", path.display()))),
    }
}

/// Reads, changes and writes config.toml, one writer at a time (a lock file beside it, so
/// parallel `config set`s and sign-ins each keep their change). A file every command accepted
/// stays one; a broken one may be fixed a step at a time. The new file replaces the old at
/// once (a crash leaves one or the other).
fn edit(
    path: &Path,
    change: impl FnOnce(&mut DocumentMut) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let dir = path.parent().ok_or_else(|| Failure::usage("config.toml has no directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| Failure::server(format!("{}: {e}", dir.display())))?;
    let lock = std::fs::File::create(path.with_extension("toml.lock"))
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| Failure::server(format!("cannot lock {}: {e}", path.display())))?;
    let was_valid = parse_config(&read_text(path)?, path).is_ok();
    let mut document = read(path)?;
    change(&mut document)?;
    let text = document.to_string();
    if was_valid {
        parse_config(&text, path)?;
    }
    let temporary = path.with_extension(format!("toml.tmp.{}", std::process::id()));
    std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path)).map_err(
        |e| {
            let _ = std::fs::remove_file(&temporary);
            Failure::server(format!("cannot write {}: {e}", path.display()))
        },
    )?;
    drop(lock);
    Ok(())
}

/// The table that holds `key` (`flextell.token_url`: the profile's `flextell` table), made
/// when missing, and the key's last part.
fn parent<'d, 'k>(
    document: &'d mut DocumentMut,
    profile: &str,
    key: &'k str,
) -> Result<(&'d mut Table, &'k str), Failure> {
    let mut table = child(document.as_table_mut(), "profiles", true)?;
    table = child(table, profile, false)?;
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    for part in parts {
        table = child(table, part, false)?;
    }
    Ok((table, last))
}

fn slot<'d>(
    document: &'d mut DocumentMut,
    profile: &str,
    key: &str,
) -> Result<&'d mut Item, Failure> {
    let (table, last) = parent(document, profile, key)?;
    Ok(table.entry(last).or_insert(Item::None))
}

fn child<'t>(table: &'t mut Table, key: &str, implicit: bool) -> Result<&'t mut Table, Failure> {
    let item = table.entry(key).or_insert_with(|| {
        let mut new = Table::new();
        new.set_implicit(implicit);
        Item::Table(new)
    });
    item.as_table_mut().ok_or_else(|| {
        Failure::usage(format!("config.toml: `{key}` is not a table; fix it by hand"))
    })
}
