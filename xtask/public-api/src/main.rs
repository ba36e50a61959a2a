//! Renders rustdoc JSON as a public API listing: `xtask-public-api <crate.json> <out.txt>...`,
//! one pair per crate, each item on a line, sorted (`cargo xtask public-api` compares them with
//! the committed `crates/<name>/public-api.txt`).
//!
//! What is listed: every public item, and the impls a user can rely on: traits implemented by
//! hand or derived (`Clone`, `Debug`, ...) and the stable auto traits (`Send`, `Sync`, `Unpin`,
//! `UnwindSafe`, `RefUnwindSafe`), since a type that stops being `Send` breaks its users. Left
//! out: blanket impls (`impl<T> From<T> for T`, the same for every type) and the unstable
//! auto traits rustdoc also reports (`Freeze`, `UnsafeUnpin`), which no user can name on
//! stable and which come and go with the toolchain.

use std::process::ExitCode;

/// Auto traits a stable user cannot name: listing them would make every toolchain update a
/// diff of the API.
const UNSTABLE_AUTO_TRAITS: [&str; 2] = ["core::marker::Freeze", "core::marker::UnsafeUnpin"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || !args.len().is_multiple_of(2) {
        eprintln!("usage: xtask-public-api <crate.json> <out.txt> [<crate.json> <out.txt>...]");
        return ExitCode::from(2);
    }
    for pair in args.chunks(2) {
        if let Err(message) = render(&pair[0], &pair[1]) {
            eprintln!("xtask-public-api: {}: {message}", pair[0]);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Only the field that says which format the rest is in.
#[derive(serde::Deserialize)]
struct Format {
    format_version: u32,
}

fn render(json: &str, out: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(json).map_err(|e| e.to_string())?;
    let found = serde_json::from_str::<Format>(&text).map_err(|e| e.to_string())?.format_version;
    if found != rustdoc_types::FORMAT_VERSION {
        return Err(format!(
            "rustdoc wrote JSON format {found}; this tool reads format {}: move `public-api` and \
             `rustdoc-types` in xtask/public-api/Cargo.toml to the releases that read {found}",
            rustdoc_types::FORMAT_VERSION
        ));
    }
    drop(text);
    let api = public_api::Builder::from_rustdoc_json(json)
        .omit_blanket_impls(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut listing = String::new();
    for item in api.items() {
        let line = item.to_string();
        let unstable = line.starts_with("impl")
            && UNSTABLE_AUTO_TRAITS.iter().any(|t| line.contains(&format!("{t} for ")));
        if !unstable {
            listing.push_str(&line);
            listing.push('\n');
        }
    }
    std::fs::write(out, listing).map_err(|e| format!("{out}: {e}"))
}
