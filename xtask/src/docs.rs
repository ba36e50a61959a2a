//! `cargo xtask docs`: the doc pages as doctests, the API docs with warnings denied, the
//! facade's paths in every crate's examples, and how many pages show an example.

use std::time::Instant;

/// The published libraries' docs (each crate without `publish = false`), warnings denied (every
/// feature on, as docs.rs builds the facade). First, README.md and `docs/` must all be doctests. Then how many of the pages a user reads show an example, per
/// crate (see [`example_counts`]).
pub(crate) fn check() -> Result<(), String> {
    #[allow(clippy::disallowed_methods)] // timing the task, outside any library
    let started = Instant::now();
    markdown_doctests()?;
    // Libraries only: the CLI's binary is also called `helloflex`, and its docs would be
    // written over the facade's (cargo#6313). `public-api` documents the same packages with the
    // same flags, so the dependencies checked here serve it too.
    let libraries = crate::public_api::published_libraries()?;
    let mut args = vec!["doc", "--lib", "--no-deps", "--all-features"];
    for (_, name) in &libraries {
        args.extend(["-p", name]);
    }
    crate::cargo(&args, &[("RUSTDOCFLAGS", "-D warnings")])?;
    let doc = crate::target_directory()?.join("doc");
    facade_paths_in_examples(&doc.join("helloflex"))?;
    let mut short = Vec::new();
    for (krate, target_percent) in EXAMPLE_TARGETS {
        let pages = example_counts(&doc.join(krate))?;
        let with = pages.iter().filter(|(_, example)| *example).count();
        let percent = if pages.is_empty() { 0 } else { with * 100 / pages.len() };
        println!(
            "{krate}: {with} of {} pages with an example ({percent}%, target {target_percent}%)",
            pages.len()
        );
        if with * 100 < target_percent * pages.len() {
            let missing: Vec<&str> = pages
                .iter()
                .filter(|(_, example)| !example)
                .map(|(page, _)| page.as_str())
                .collect();
            short.push(format!("{krate}: no example on {}", missing.join(", ")));
        }
    }
    eprintln!("  (docs and counts: {:.1}s)", started.elapsed().as_secs_f64());
    if short.is_empty() { Ok(()) } else { Err(short.join("\n")) }
}

/// README.md and every page of `docs/` run as doctests of the facade (`cargo test -p helloflex
/// --doc`): each is listed in its `mod markdown` (an `include_str!`), and no block in them is
/// marked `ignore` (a block that cannot run is `no_run`, and only to reach a vendor's host).
fn markdown_doctests() -> Result<(), String> {
    let root = crate::workspace_root();
    let facade_path = root.join("crates/helloflex/src/lib.rs");
    let facade = std::fs::read_to_string(&facade_path)
        .map_err(|e| format!("{}: {e}", facade_path.display()))?;
    let mut pages = vec!["README.md".to_owned()];
    let docs = std::fs::read_dir(root.join("docs")).map_err(|e| format!("docs/: {e}"))?;
    for entry in docs.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    pages.sort();
    let mut problems = Vec::new();
    for page in &pages {
        if !facade.contains(&format!("include_str!(\"../../../{page}\")")) {
            problems.push(format!(
                "{page} is not a doctest: add it to `mod markdown` in crates/helloflex/src/lib.rs"
            ));
        }
        let text = std::fs::read_to_string(root.join(page)).map_err(|e| format!("{page}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else { continue };
            if info.split(',').any(|attribute| attribute.trim() == "ignore") {
                problems.push(format!("{page}:{}: a block marked `ignore` (make it run)", n + 1));
            }
        }
    }
    println!("{} pages of markdown run as doctests of crates/helloflex", pages.len());
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

/// The crates whose doc examples name items as a user of the facade does (`helloflex::...`),
/// through a hidden `mod helloflex` that re-exports what the doctest can see (they cannot
/// depend on the facade: it depends on them).
const SHIMMED_CRATES: [&str; 5] =
    ["core", "auth", "transport-reqwest", "transport-ureq", "store-redis"];

/// Every `helloflex::` path in the visible lines of those crates' doc examples must exist in the
/// facade (`facade_doc`: its rustdoc output), or a user copying the example gets a name the
/// hidden module supplied and `helloflex` lacks: a root item (a page of its own), an item of
/// `helloflex::blocking`, or anything under the crates it re-exports whole (`core`, `auth`,
/// `http`, `emulator`).
fn facade_paths_in_examples(facade_doc: &std::path::Path) -> Result<(), String> {
    const KINDS: [&str; 7] = ["struct", "enum", "union", "trait", "fn", "type", "macro"];
    let page = |dir: &std::path::Path, name: &str| {
        KINDS.iter().any(|kind| dir.join(format!("{kind}.{name}.html")).exists())
    };
    let mut wrong = Vec::new();
    let mut checked = 0;
    for krate in SHIMMED_CRATES {
        let mut files = Vec::new();
        let mut stack = vec![crate::workspace_root().join("crates").join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            // The visible lines of each fenced block in doc comments, joined, with where it starts.
            let mut block: Option<(usize, String)> = None;
            let mut blocks = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let trimmed = line.trim_start();
                let Some(doc) = trimmed.strip_prefix("///").or_else(|| trimmed.strip_prefix("//!"))
                else {
                    continue;
                };
                let doc = doc.strip_prefix(' ').unwrap_or(doc);
                if doc.trim_start().starts_with("```") {
                    match block.take() {
                        Some(done) => blocks.push(done),
                        None => block = Some((n + 1, String::new())),
                    }
                } else if let Some((_, code)) = &mut block
                    && !(doc == "#" || doc.starts_with("# "))
                {
                    code.push_str(doc);
                    code.push('\n');
                }
            }
            for (line, code) in blocks {
                for path in helloflex_paths(&code) {
                    checked += 1;
                    let found = match path.as_slice() {
                        [] => true,
                        [first, ..]
                            if ["core", "auth", "http", "emulator"].contains(&first.as_str()) =>
                        {
                            true
                        }
                        [first] if first == "blocking" => true,
                        [first, item, ..] if first == "blocking" => {
                            page(&facade_doc.join("blocking"), item)
                        }
                        [first, ..] => page(facade_doc, first),
                    };
                    if !found {
                        let shown = file
                            .strip_prefix(crate::workspace_root())
                            .unwrap_or(&file)
                            .display()
                            .to_string();
                        wrong.push(format!(
                            "{shown}: the example at line {line} names helloflex::{}",
                            path.join("::")
                        ));
                    }
                }
            }
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "names the facade does not have (re-export them, or name them by their crate):\n{}",
            wrong.join("\n")
        ));
    }
    println!(
        "{checked} helloflex:: paths in the examples of core, auth, the transports and the Redis \
         store: all in the facade"
    );
    Ok(())
}

/// Each path `helloflex::a::b` or `helloflex::{a, b::{c, d}}` in `code`, as its segments.
fn helloflex_paths(code: &str) -> Vec<Vec<String>> {
    fn ident(rest: &str) -> (&str, &str) {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        rest.split_at(end)
    }
    /// Reads one path tree at `rest` under `prefix`, pushing its leaves; returns what follows.
    fn tree<'a>(rest: &'a str, prefix: &[String], out: &mut Vec<Vec<String>>) -> &'a str {
        let rest = rest.trim_start();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                inner = tree(inner, prefix, out).trim_start();
                if let Some(after) = inner.strip_prefix(',') {
                    inner = after;
                    if let Some(after) = inner.trim_start().strip_prefix('}') {
                        return after;
                    }
                } else {
                    return inner.strip_prefix('}').unwrap_or(inner);
                }
            }
        }
        let (name, after) = ident(rest);
        if name.is_empty() {
            return rest;
        }
        let mut path = prefix.to_vec();
        if name != "self" {
            path.push(name.to_owned());
        }
        match after.strip_prefix("::") {
            Some(next) => tree(next, &path, out),
            None => {
                out.push(path);
                after
            }
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("helloflex::") {
        let start = at + found;
        let preceded =
            code[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
        at = start + "helloflex::".len();
        if !preceded {
            tree(&code[at..], &[], &mut out);
        }
    }
    out
}

/// The share of pages that must show an example, per crate: the facade is what users read.
const EXAMPLE_TARGETS: [(&str, usize); 3] =
    [("helloflex", 90), ("helloflex_auth", 70), ("helloflex_core", 70)];

/// Every page rustdoc wrote for a crate in `dir` (`target/doc/<crate>`) that documents an item a
/// user reaches: a module (`index.html`), struct, enum, union, trait, function, type alias or
/// macro (constants are left out), and whether the item's own doc comment (the block at the
/// top of the page, not a method's) shows a Rust example that is compiled: rendered as
/// `<div class="example-wrap"><pre class="rust rust-example-rendered">`; an `ignore`,
/// `compile_fail` or `should_panic` block has another class on its `example-wrap` and does not
/// count, a `no_run` one (compiled, not run) does. Redirect pages are skipped.
fn example_counts(dir: &std::path::Path) -> Result<Vec<(String, bool)>, String> {
    const KINDS: [&str; 7] = ["struct.", "enum.", "union.", "trait.", "fn.", "type.", "macro."];
    const EXAMPLE: &str = "<div class=\"example-wrap\"><pre class=\"rust rust-example-rendered\"";
    let mut pages = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let item = name == "index.html"
                || (name.ends_with(".html") && KINDS.iter().any(|k| name.starts_with(k)));
            if !item {
                continue;
            }
            let html = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if html.contains("http-equiv=\"refresh\"") {
                continue;
            }
            let top = html
                .split_once("class=\"toggle top-doc\"")
                .and_then(|(_, rest)| rest.split_once("</details>"))
                .map_or("", |(top, _)| top);
            let page = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            pages.push((page, top.contains(EXAMPLE)));
        }
    }
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    #[test]
    fn helloflex_paths_are_read_from_use_trees_and_expressions() {
        let code = "use helloflex::{Error, http::{self, StatusCode}, blocking::Client};\n\
                    let e = helloflex::emulator::start(x); my_helloflex::Not; helloflex::Blame::Caller";
        let paths: Vec<String> =
            super::helloflex_paths(code).into_iter().map(|p| p.join("::")).collect();
        assert_eq!(
            paths,
            [
                "Error",
                "http",
                "http::StatusCode",
                "blocking::Client",
                "emulator::start",
                "Blame::Caller"
            ]
        );
    }
}
