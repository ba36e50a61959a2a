//! Why the emulator refuses a value, in one form for the admin API, the command line and the
//! Rust API: the field (with its list entry, counting from 0: `faults[2].path`) and what is
//! wrong and allowed (`must start with "/" (got "news")`).

use std::fmt;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

/// A value the emulator refuses because it cannot work: which field, and what is allowed.
///
/// Displayed as `field: problem`, e.g. `faults[2].path: must start with "/" (got "news")`; the
/// admin API answers it as JSON (HTTP 400), the command line prints it after `error: ` and exits
/// with code 2.
///
/// ```
/// use helloflex_emulator::{Fault, FaultKind};
///
/// let emulator = helloflex_emulator::start(Default::default())?;
/// let refused = emulator
///     .try_add_fault(Fault::on_path("news", FaultKind::Status { status: 99 }))
///     .unwrap_err();
/// assert_eq!(refused[0].to_string(), r#"path: must start with "/" (got "news")"#);
/// assert_eq!(refused[1].field, "status");
/// assert_eq!(refused[1].problem, "must be 200..=599 (got 99)");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The field, with list entries counting from 0 (`faults[2].path`, `--fault[0].status`,
    /// `client`); `body` for a body that is not JSON at all.
    pub field: String,
    /// What is wrong and what is allowed, e.g. `must be 1..=31536000 (got 0)`.
    pub problem: String,
}

impl Refusal {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The same refusal, with its field inside `at`: `path` within `faults[2]` is
    /// `faults[2].path`, `[1]` within `scopes` is `scopes[1]`, the whole value within `at` is
    /// `at`.
    pub fn within(self, at: &str) -> Self {
        Self { field: join(at, &self.field), problem: self.problem }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for Refusal {}

/// Refusals as one line: `a: ...; b: ...`.
pub(crate) fn one_line(refusals: &[Refusal]) -> String {
    refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// `name` inside `at` (either may be empty; an index joins without a dot).
pub(crate) fn join(at: &str, name: &str) -> String {
    match (at.is_empty(), name.is_empty()) {
        (_, true) => at.to_owned(),
        (true, false) => name.to_owned(),
        (false, false) if name.starts_with('[') => format!("{at}{name}"),
        (false, false) => format!("{at}.{name}"),
    }
}

/// A JSON value as quoted in a refusal, cut short if long.
pub(crate) fn got(value: &Value) -> String {
    shorten(value.to_string())
}

/// A string as quoted in a refusal, cut short if long.
pub(crate) fn got_str(value: &str) -> String {
    shorten(format!("{value:?}"))
}

fn shorten(text: String) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// `must be LO..=HI (got V)` when `value` is outside `range`.
pub(crate) fn outside(value: u64, range: &RangeInclusive<u64>) -> Option<String> {
    (!range.contains(&value))
        .then(|| format!("must be {}..={} (got {value})", range.start(), range.end()))
}

/// Reads the fields of one JSON object, collecting a refusal for each field that is missing,
/// of the wrong type or out of range, and for each field it does not know.
pub(crate) struct Fields<'a> {
    at: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
    refusals: Vec<Refusal>,
}

impl<'a> Fields<'a> {
    /// The object `value` at `at`; refused (as `what`, e.g. `a JSON object like {...}`) if it
    /// is not one.
    pub(crate) fn of(value: &'a Value, at: &str, what: &str) -> Result<Self, Refusal> {
        match value {
            Value::Object(map) => {
                Ok(Self { at: at.to_owned(), map, known: Vec::new(), refusals: Vec::new() })
            }
            other => Err(Refusal::new(at, format!("must be {what} (got {})", got(other)))),
        }
    }

    /// The field's name inside the object.
    pub(crate) fn field(&self, name: &str) -> String {
        join(&self.at, name)
    }

    /// Refuses field `name`.
    pub(crate) fn refuse(&mut self, name: &str, problem: impl Into<String>) {
        self.refusals.push(Refusal::new(self.field(name), problem));
    }

    /// Marks `names` as fields of this object without reading them.
    pub(crate) fn allow(&mut self, names: &[&'static str]) {
        self.known.extend_from_slice(names);
    }

    /// The field's value; `None` when absent or `null` (the same thing here).
    pub(crate) fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.known.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string field; `allowed` says what it may be, for the refusal of another type.
    pub(crate) fn string(&mut self, name: &'static str, allowed: &str) -> Option<&'a str> {
        match self.get(name)? {
            Value::String(s) => Some(s),
            other => {
                let problem = format!("must be {allowed} (got {})", got(other));
                self.refuse(name, problem);
                None
            }
        }
    }

    /// A whole-number field within `range` (which fits `T`).
    pub(crate) fn int<T: TryFrom<u64>>(
        &mut self,
        name: &'static str,
        range: &RangeInclusive<u64>,
    ) -> Option<T> {
        let value = self.get(name)?;
        let problem = match value.as_u64() {
            Some(n) => match outside(n, range) {
                None => match T::try_from(n) {
                    Ok(n) => return Some(n),
                    Err(_) => format!("must be {}..={} (got {n})", range.start(), range.end()),
                },
                Some(problem) => problem,
            },
            None => format!(
                "must be a whole number in {}..={} (got {})",
                range.start(),
                range.end(),
                got(value)
            ),
        };
        self.refuse(name, problem);
        None
    }

    /// `value`, or a refusal `required: {allowed}` when the field is absent (a field present
    /// but refused already has its refusal).
    pub(crate) fn require<T>(
        &mut self,
        name: &'static str,
        value: Option<T>,
        allowed: &str,
    ) -> Option<T> {
        if value.is_none() && self.map.get(name).is_none_or(Value::is_null) {
            self.refuse(name, format!("required: {allowed}"));
        }
        value
    }

    /// The refusals, with one for each field the object does not have.
    pub(crate) fn finish(mut self) -> Vec<Refusal> {
        let mut seen = Vec::with_capacity(self.known.len());
        self.known.retain(|k| {
            let first = !seen.contains(k);
            seen.push(*k);
            first
        });
        let unknown: Vec<&String> =
            self.map.keys().filter(|k| !self.known.contains(&k.as_str())).collect();
        if !unknown.is_empty() {
            let allowed = if self.known.is_empty() {
                "this takes no fields".to_owned()
            } else {
                format!("the fields here are {}", self.known.join(", "))
            };
            let refusals: Vec<Refusal> = unknown
                .into_iter()
                .map(|k| Refusal::new(join(&self.at, k), format!("unknown field; {allowed}")))
                .collect();
            self.refusals.extend(refusals);
        }
        self.refusals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_join_with_dots_and_indices() {
        assert_eq!(join("faults[2]", "path"), "faults[2].path");
        assert_eq!(join("scopes", "[1]"), "scopes[1]");
        assert_eq!(join("", "path"), "path");
        assert_eq!(join("faults[0]", ""), "faults[0]");
        assert_eq!(Refusal::new("status", "x").within("--fault[1]").field, "--fault[1].status");
        assert_eq!(Refusal::new("", "x").to_string(), "x");
    }

    #[test]
    fn long_values_are_cut_short() {
        let long = "x".repeat(200);
        assert!(got_str(&long).ends_with("...") && got_str(&long).len() < 100);
    }
}
