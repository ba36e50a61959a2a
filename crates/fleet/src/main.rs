//! `fleet-member`: one instance of a service fleet. It calls the API from many tasks (or
//! threads) for a while, its tokens shared with the other instances through a Redis store, and
//! prints one JSON line: calls made, calls failed, how its last call ended.
//!
//! `fleet-member --grant cc|ac --emulator URL --redis URL [--user NAME] [--tasks N]
//! [--seconds S] [--period-ms MS] [--flavour async|blocking]`; the key ring is
//! read from `HELLOFLEX_TOKEN_KEYS`. Run by `crates/fleet/tests/fleet.rs` and `cargo xtask bench`.

mod member;

use std::process::ExitCode;

fn main() -> ExitCode {
    match member::Args::parse(std::env::args().skip(1)).and_then(member::run) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fleet-member: {error}");
            ExitCode::from(2)
        }
    }
}
