//! Tidy: the rules that hold the house together, checked by a test (rust-analyzer's style):
//! every crate and module on the `docs/ARCHITECTURE.md` code map, every source file opening
//! with `//!`, the direction of dependencies between crates, and no `unwrap` / `expect` /
//! `unreachable!` in library code outside tests.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_crate_and_module_is_on_the_code_map() {
    let map = read(&root().join("docs/ARCHITECTURE.md"));
    let mut missing = Vec::new();
    for krate in crates() {
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        if !map.contains(&format!("{name}/")) && !map.contains(&format!("`{name}`")) {
            missing.push(format!("crate {name}"));
        }
        for file in sources(&krate.join("src")) {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            if ["lib", "main"].contains(&stem.as_str()) {
                continue;
            }
            let named = map.contains(&format!("`{stem}`")) || map.contains(&format!("{stem}.rs"));
            if !named {
                missing.push(file.strip_prefix(root()).unwrap_or(&file).display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "add a line to docs/ARCHITECTURE.md's code map for: {missing:?}");
}

#[test]
fn every_source_file_says_what_it_holds() {
    let mut files = sources(&root().join("xtask/src"));
    for krate in crates() {
        files.extend(sources(&krate.join("src")));
        files.extend(sources(&krate.join("examples")));
    }
    let silent: Vec<String> = files
        .iter()
        .filter(|f| !read(f).starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(silent.is_empty(), "open these with a //! line saying what they hold: {silent:?}");
}

/// The `[dependencies]` section of a crate's manifest (not dev- or build-dependencies).
fn normal_dependencies(krate: &str) -> Vec<String> {
    let manifest = read(&root().join("crates").join(krate).join("Cargo.toml"));
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            deps.push(name.trim().trim_matches('"').to_owned());
        }
    }
    deps
}

#[test]
fn dependencies_point_down_the_layers() {
    let io = ["reqwest", "ureq", "tokio", "hyper", "hyper-util", "async-trait", "getrandom"];
    let rules: [(&str, &[&str]); 6] = [
        // The core is sans-IO and knows no other crate of ours.
        (
            "core",
            &[
                &io[..],
                &["helloflex-auth", "helloflex-transport-reqwest", "helloflex-transport-ureq"],
            ]
            .concat(),
        ),
        // auth knows no transport and no runtime.
        (
            "auth",
            &[
                "reqwest",
                "ureq",
                "tokio",
                "hyper",
                "helloflex-transport-reqwest",
                "helloflex-transport-ureq",
            ],
        ),
        // A transport knows not the other one.
        ("transport-reqwest", &["ureq", "helloflex-transport-ureq"]),
        ("transport-ureq", &["reqwest", "tokio", "helloflex-transport-reqwest"]),
        // The CLI uses the facade's blocking client; it knows no transport crate itself.
        ("cli", &["helloflex-transport-reqwest", "helloflex-transport-ureq", "reqwest", "tokio"]),
        // A store knows the store seam, not a transport or a runtime.
        (
            "store-redis",
            &[
                "reqwest",
                "ureq",
                "tokio",
                "helloflex-transport-reqwest",
                "helloflex-transport-ureq",
            ],
        ),
    ];
    for (krate, forbidden) in rules {
        let deps = normal_dependencies(krate);
        let wrong: Vec<&String> = deps.iter().filter(|d| forbidden.contains(&d.as_str())).collect();
        assert!(wrong.is_empty(), "crates/{krate} must not depend on {wrong:?}");
    }
}

#[test]
fn library_code_does_not_unwrap() {
    let libraries =
        ["core", "auth", "transport-reqwest", "transport-ureq", "store-redis", "helloflex"];
    let mut found = Vec::new();
    for krate in libraries {
        for file in sources(&root().join("crates").join(krate).join("src")) {
            let text = read(&file);
            // Tests live at the end of a file in `#[cfg(test)] mod tests`.
            let library = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in library.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let banned = [".unwrap()", ".expect(", "unreachable!("];
                if banned.iter().any(|b| code.contains(b)) && !line.contains("// invariant:") {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, code));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "no unwrap/expect/unreachable! in library code (mark a proven invariant `// invariant: why`): {found:#?}"
    );
}

#[test]
fn internal_crates_are_not_published() {
    for (dir, name) in [
        ("crates/suite", "helloflex-suite"),
        ("crates/interop", "helloflex-interop"),
        ("crates/bench", "helloflex-bench"),
        ("crates/examples", "helloflex-examples"),
        ("crates/fleet", "helloflex-fleet"),
        ("crates/sim", "helloflex-sim"),
        ("crates/testkit", "helloflex-testkit"),
        ("xtask", "xtask"),
    ] {
        let manifest = read(&root().join(dir).join("Cargo.toml"));
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{dir} is {name}");
        assert!(manifest.contains("publish = false"), "{dir} must say publish = false");
    }
}

/// The core's modules import one another without a circle: each can be read knowing only what
/// is beneath it.
#[test]
fn the_core_has_no_import_circles() {
    use std::collections::{BTreeMap, BTreeSet};
    let dir = root().join("crates/core/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&dir) {
        // A module's folder (`lifecycle/token.rs`) is read as part of the module: what its
        // files import, the module imports.
        let top = file.strip_prefix(&dir).unwrap().components().next().unwrap();
        let name = Path::new(top.as_os_str()).file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let module: String =
                rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            let is_module = dir.join(format!("{module}.rs")).exists() || dir.join(&module).is_dir();
            if !module.is_empty() && module != name && is_module {
                uses.insert(module);
            }
        }
        graph.entry(name).or_default().extend(uses);
    }
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("an import circle in crates/core/src: {}", circle.join(" -> "));
        }
    }
}
