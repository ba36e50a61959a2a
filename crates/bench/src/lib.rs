//! The loopback load benchmark behind `loadbench`, `allocbench` and `firstcall` (run by
//! `cargo xtask bench`), one module per section. Against the emulator in a separate process (so
//! this process's memory is the client's alone), it measures side by side in one run, in
//! interleaved rounds, reporting medians and ratios:
//!
//! 1. authenticated GET throughput ([`throughput`], over the clients in [`clients`], in the
//!    rounds of [`abba`]): SDK vs raw client with a fixed bearer header, plus a raw-vs-raw
//!    control row (the noise floor), and the SDK against oauth2-rs 5 with the token cache a
//!    user of it would write ([`peer`]); in a child process on CPU 0 with its own emulator on
//!    CPU 1 (`taskset`), where the machine has two cores;
//! 2. herds of 1,000 callers ([`herds`]), cold and at expiry, with and without 25 ms of token
//!    latency, beside a token per call and a hand-written mutex cache;
//! 3. latency across token rollover (1 s tokens) vs long-lived tokens, with an SVG chart
//!    ([`rollover`]);
//! 4. allocations per call (counted in `allocbench`, beside `loadbench`) and peak RSS over
//!    100,000 calls ([`memory`]);
//! 5. instructions and level-1 cache misses per call under callgrind (valgrind) with fixed
//!    simulated caches, SDK against raw and against oauth2-rs with its cache: steady figures
//!    ([`instructions`]);
//! 6. a fleet on one Redis store (a real `redis-server` on loopback): the request path on the
//!    Redis store against the memory store, and token requests per lifetime of 8 processes
//!    ([`fleet`]);
//! 7. users' tokens in SQL: the request path on a SQLite file and on PostgreSQL (a real server
//!    on loopback) against the memory store, and PostgreSQL round trips per refresh ([`sql`]);
//! 8. the first call ([`first_call`]): a new `firstcall` process per sample (beside
//!    `loadbench`), from its start to the first API answer, the SDK's clients against raw
//!    reqwest and ureq and oauth2-rs, and `build()` alone, over plain HTTP and over TLS (a
//!    loopback TLS listener with a private CA in front of the emulator);
//! 9. many signed-in users ([`many_users`]): memory per idle user, what runs while they are
//!    idle, and how proactive refresh spreads 100,000 users' refreshes;
//! 10. section 1's async rows unpinned, client and emulator sharing both cores, in several
//!     runtime shapes ([`shared_cores`]).
//!
//! [`report`] writes the sections as `load.md`, below this run's [`targets`] table; [`emulator`] starts and steers the emulator;
//! [`probes`] holds the measures run by hand while working on the request path (client CPU per
//! call, slot patterns). Every loop is bounded in count and in time.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock; that is its job

pub mod abba;
pub mod clients;
pub mod emulator;
pub mod first_call;
pub mod fleet;
pub mod herds;
pub mod instructions;
pub mod many_users;
pub mod memory;
pub mod peer;
pub mod probes;
pub mod report;
pub mod rollover;
pub mod shared_cores;
pub mod sql;
pub mod targets;
pub mod throughput;

/// The demo client, whose tokens live long.
pub const DEMO: (&str, &str) = ("demo-client", "demo-secret");
/// The client the emulator is started with whose tokens are made to live 1 s (herd at expiry,
/// rollover).
pub const ROLL: (&str, &str) = ("roll-client", "roll-secret");

/// Every phase's result: any error ends the run with its message.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The median of `values` (0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The `p` quantile (0 to 1) of `sorted` (zero for none).
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The value after `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// A multi-threaded runtime with 2 workers, as every async section uses.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn median_and_percentile_of_nothing_are_zero() {
        assert_eq!(super::median(Vec::new()), 0.0);
        assert_eq!(super::percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn median_takes_the_upper_middle_and_percentile_rounds_to_the_nearest() {
        assert_eq!(super::median(vec![3.0, 1.0, 2.0, 4.0]), 3.0);
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(super::percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(super::percentile(&sorted, 0.99), Duration::from_millis(99));
    }
}
