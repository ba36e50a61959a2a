//! Section 10: the async rows of section 1 again, unpinned: the client and the emulator compete
//! for both cores wherever the scheduler puts them, in several runtime shapes. Section 1 pins the
//! client to one core and the emulator to the other, which measures the client's own work; a
//! user's service shares its cores with everything else, where waking another thread, a timer
//! or a hand-off between tasks costs more. A lead that holds only pinned belongs to the setup.
//!
//! Each shape runs in a child process (`--phase throughput` unpinned, `--runtime`, and the
//! emulator in its own process or in the client's process on a runtime of its own).

use std::process::{Command, Stdio};

use crate::Result;
use crate::abba::AbbaRow;

/// One runtime shape: what the report calls it, and the child's arguments.
struct Shape {
    name: &'static str,
    runtime: &'static str,
    in_process: bool,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "multi-thread runtime (2 workers), emulator in its own process",
        runtime: "multi",
        in_process: false,
    },
    Shape {
        name: "current-thread runtime, emulator in its own process",
        runtime: "current",
        in_process: false,
    },
    Shape {
        name: "multi-thread runtime (2 workers), emulator in the client's process on a runtime of its own",
        runtime: "multi",
        in_process: true,
    },
];

/// Rounds per row for one caller (half that for 32): section 1's. With half as many, a row's
/// median over rounds moved by 1-4% (bootstrap standard error, 27 rows of three runs) against
/// a target 1% from parity; doubling them narrows that by a quarter to a third.
const ROUNDS_ONE_CALLER: usize = crate::abba::ROUNDS_ONE_CALLER;

/// One shape's rows (async at 1 and 32 callers against raw reqwest, and against oauth2-rs).
pub struct ShapeRows {
    /// The shape, as the report names it.
    pub shape: String,
    /// Its rows, as section 1's.
    pub rows: Vec<AbbaRow>,
}

/// Runs section 10 with the emulator binary at `emulator`; `out` holds the rows' files.
pub fn run(emulator: &str, out: &std::path::Path) -> Result<Vec<ShapeRows>> {
    let mut all = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        eprintln!("loadbench: unpinned, {}", shape.name);
        let file = out.join(format!("shared-cores-{i}.tsv"));
        let status = Command::new(std::env::current_exe()?)
            .args(["--phase", "throughput", "--runtime", shape.runtime])
            .args(["--emulator", if shape.in_process { "in-process" } else { emulator }])
            .args(["--only", "async1,async32,oauth2"])
            .args(["--rounds", &ROUNDS_ONE_CALLER.to_string()])
            .arg("--rows-out")
            .arg(&file)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("the unpinned run '{}' failed ({status})", shape.name).into());
        }
        let text = std::fs::read_to_string(&file)?;
        let rows = text.lines().map(AbbaRow::from_line).collect::<Result<_>>()?;
        all.push(ShapeRows { shape: shape.name.to_owned(), rows });
    }
    Ok(all)
}

/// Section 10's Markdown.
pub fn markdown(shapes: &[ShapeRows]) -> String {
    use std::fmt::Write as _;
    let mut md = String::from(
        "| runtime shape | row | SDK | baseline | SDK / baseline | control |\n|---|---|---:|---:|---:|---:|\n",
    );
    for s in shapes {
        for r in &s.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | **{:.3}x** | {:.3}x |",
                s.shape,
                r.name,
                r.b(),
                r.a(),
                r.ratio(),
                r.control()
            );
        }
    }
    md
}
