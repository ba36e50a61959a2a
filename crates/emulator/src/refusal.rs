//! Why the emulator refuses a value, in one form for the admin API, the command line and the
//! Rust API: the field (with its list entry, counting from 0: `faults[2].path`) and what is
//! wrong and allowed (`must start with "/" (got "news")`).

use std::fmt;
use std::ops::RangeInclusive;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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

/// Reads JSON text: the value, and a refusal of each key given more than once in one object,
/// named from the top (`mode`, `[1].path`). serde_json keeps the last of them silently, other
/// readers the first: such a body says two things, so it cannot work.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<(Value, Vec<Refusal>), serde_json::Error> {
    let mut repeated = Vec::new();
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Once { at: String::new(), repeated: &mut repeated }.deserialize(&mut reader)?;
    reader.end()?;
    Ok((value, repeated))
}

/// A JSON value from any serde deserializer, refusing (as a serde error) a key given more than
/// once in one object, as [`parse_json`] does.
pub(crate) fn value_once<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let mut repeated = Vec::new();
    let value = Once { at: String::new(), repeated: &mut repeated }.deserialize(deserializer)?;
    if repeated.is_empty() { Ok(value) } else { Err(de::Error::custom(one_line(&repeated))) }
}

/// Deserializes one JSON value at `at`, noting each key an object repeats.
struct Once<'r> {
    at: String,
    repeated: &'r mut Vec<Refusal>,
}

impl<'de> DeserializeSeed<'de> for Once<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Once<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Once { at, repeated } = self;
        let mut items = Vec::new();
        loop {
            let entry =
                Once { at: join(&at, &format!("[{}]", items.len())), repeated: &mut *repeated };
            match seq.next_element_seed(entry)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Once { at, repeated } = self;
        let mut object = Map::new();
        // Each repeated key, and how often it came.
        let mut counts: Vec<(String, usize)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let field = Once { at: join(&at, &key), repeated: &mut *repeated };
            let value = map.next_value_seed(field)?;
            if object.contains_key(&key) {
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 2)),
                }
            } else {
                object.insert(key, value);
            }
        }
        repeated.extend(counts.into_iter().map(|(key, n)| {
            Refusal::new(
                join(&at, &key),
                format!(
                    "must appear once in its object (got {n} times; readers disagree on which \
                     one counts)"
                ),
            )
        }));
        Ok(Value::Object(object))
    }
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
            // A whole number too large even for u64 (JSON reads it as a float) is out of
            // range, not "not a whole number".
            None if value.as_f64().is_some_and(|f| f >= 18_446_744_073_709_551_616.0) => {
                format!("must be {}..={} (got {})", range.start(), range.end(), got(value))
            }
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

/// Why `url` is not an absolute `http://` or `https://` URL a browser (or the SDK) would go to,
/// if it is not: no fragment, no user info (`user:password@`: browsers strip or refuse it and
/// the SDK refuses it), a host, and a port (if any) in 1..=65535.
pub(crate) fn absolute_url_problem(url: &str) -> Option<String> {
    let quoted = got_str(url);
    let Some(uri) = url.parse::<http::Uri>().ok().filter(|u| {
        !url.contains('#')
            && matches!(u.scheme_str(), Some("http" | "https"))
            && u.authority().is_some()
    }) else {
        return Some(format!(
            "must be an absolute http:// or https:// URL without a fragment (got {quoted})"
        ));
    };
    let authority = uri.authority().map_or("", http::uri::Authority::as_str);
    // What follows the host (after an IPv6 literal's `]`) is the port, if anything.
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    if authority.contains('@') {
        Some(format!(
            "must not carry user info (user:password@): browsers and the SDK refuse it (got \
             {quoted})"
        ))
    } else if uri.host().is_none_or(str::is_empty) {
        Some(format!("must name a host (got {quoted})"))
    } else if let Some((_, port)) = after_host.rsplit_once(':')
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        Some(format!("must have a port in 1..=65535, or none (got {quoted})"))
    } else {
        None
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
    fn a_key_given_twice_is_refused_wherever_it_is() {
        let (value, repeated) =
            parse_json(br#"[{"a": 1}, {"b": {"c": 1, "c": 2, "c": 3}, "d": 1, "d": 1}]"#).unwrap();
        assert_eq!(value[1]["b"]["c"], 1);
        let fields: Vec<&str> = repeated.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["[1].b.c", "[1].d"]);
        assert!(repeated[0].problem.starts_with("must appear once in its object (got 3 times"));
        let (value, repeated) = parse_json(br#" {"a": [1.5, null, true, "x", -2]} "#).unwrap();
        assert!(repeated.is_empty());
        assert_eq!(value, serde_json::json!({"a": [1.5, null, true, "x", -2]}));
        assert!(parse_json(b"{} x").is_err(), "trailing characters");
        assert!(parse_json(b"{\"a\": 1,}").is_err());
    }

    #[test]
    fn long_values_are_cut_short() {
        let long = "x".repeat(200);
        assert!(got_str(&long).ends_with("...") && got_str(&long).len() < 100);
    }
}
