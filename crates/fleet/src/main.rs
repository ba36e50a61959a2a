//! `fleet-member`: one instance of a service fleet. It calls the API from many tasks (or
//! threads) for a while, its tokens shared with the other instances through a Redis or a
//! PostgreSQL store, and prints one JSON line: calls made, calls failed, how its last call ended.
//!
//! `fleet-member --grant cc|ac --emulator URL --store redis://...|postgres://... [--user NAME]
//! [--tasks N] [--seconds S] [--period-ms MS] [--flavour async|blocking]` (`--redis URL` is
//! `--store`'s older name); the key ring is read from `HELLOFLEX_TOKEN_KEYS`. Run by `crates/fleet/tests/fleet.rs` and `cargo xtask bench`.
//!
//! With `HELLOFLEX_FLEET_LOG` set to a `tracing` target filter (`helloflex=debug`,
//! `helloflex::store=debug,helloflex::token=info`), the SDK's events go to stderr, each line
//! opening with the member's process id, so the lines of a fleet sharing one terminal can be
//! told apart; `helloflex::http=debug` adds a line per exchange as it closes (its attempts and
//! their statuses).

mod member;

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Err(error) = log::init("HELLOFLEX_FLEET_LOG") {
        eprintln!("fleet-member: {error}");
        return ExitCode::from(2);
    }
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

/// The member's optional trace: the SDK's `tracing` events on stderr, filtered by targets read
/// from an environment variable, each line prefixed with the process id.
mod log {
    use std::io::Write;

    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    /// Installs the subscriber if `variable` is set (to a target filter such as
    /// `helloflex=debug`); does nothing otherwise.
    pub fn init(variable: &str) -> Result<(), String> {
        let Ok(filter) = std::env::var(variable) else { return Ok(()) };
        let targets: Targets = filter
            .parse()
            .map_err(|e| format!("{variable}={filter} is not a target filter: {e}"))?;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_thread_names(true)
                    .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
                    .with_writer(PidLines(std::process::id())),
            )
            .with(targets)
            .try_init()
            .map_err(|e| format!("tracing: {e}"))
    }

    /// Writes each event as one line on stderr, opening with the process id.
    struct PidLines(u32);

    /// One event's line, written to stderr in one call when the event is done with it.
    struct Line {
        pid: u32,
        text: Vec<u8>,
    }

    impl<'a> MakeWriter<'a> for PidLines {
        type Writer = Line;
        fn make_writer(&'a self) -> Line {
            Line { pid: self.0, text: Vec::with_capacity(256) }
        }
    }

    impl Write for Line {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.text.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for Line {
        fn drop(&mut self) {
            let mut line = format!("[{}] ", self.pid).into_bytes();
            line.extend_from_slice(&self.text);
            let _ = std::io::stderr().lock().write_all(&line);
        }
    }
}
