//! `firstcall`: one first-call sample of section 8 (`helloflex_bench::first_call`), a process
//! of its own: `firstcall <variant> --base <url> [--ca <pem>]`, where the variant is one of
//! `sdk-async`, `sdk-async-ring`, `sdk-blocking`, `raw-reqwest`, `raw-ureq`, `oauth2-reqwest`,
//! `build-async`, `build-blocking`. It prints `build_ns <n>` and exits 0 only if the API
//! answered 200.

use helloflex_bench::first_call::variants::{self, Variant};
use helloflex_bench::{Result, arg};

fn main() -> Result<()> {
    let name = std::env::args().nth(1).unwrap_or_default();
    let variant = Variant::parse(&name).ok_or_else(|| format!("unknown variant {name:?}"))?;
    let base = arg("--base").ok_or("--base <url>")?;
    let ca = arg("--ca").map(std::path::PathBuf::from);
    let built = variants::run(variant, &base, ca.as_deref())?;
    println!("build_ns {}", built.as_nanos());
    Ok(())
}
