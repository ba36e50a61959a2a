//! `allocbench`: `loadbench`'s allocation phase under a counting allocator (stats_alloc wraps
//! the system allocator; no unsafe code here). A binary of its own because the allocator's
//! shared counters are touched by every allocation on every thread: in `loadbench` they cost
//! the throughput rows about a tenth of their rate. Usage: `allocbench --base <url>`.

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = helloflex_bench::arg("--base").ok_or("--base")?;
    helloflex_bench::memory::allocations_phase(&base, &|| {
        let stats = GLOBAL.stats();
        (stats.allocations + stats.reallocations) as u64
    })
}
