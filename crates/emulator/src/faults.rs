//! Fault injection, per path prefix or per client: latency, N x status, 429 with Retry-After,
//! dropped connections, slow-drip and truncated bodies, redirects.
//!
//! A fault that cannot work is refused, whichever way it comes (the admin API, `--fault`,
//! [`Emulator::add_fault`](crate::Emulator::add_fault) or serde): each field is checked here,
//! once, and the refusal names the field and what is allowed.

use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::refusal::{
    Fields, Refusal, absolute_url_problem, got, got_str, one_line, outside, parse_json, value_once,
};

/// One injected fault: what happens, on which paths, for which client, how many times.
///
/// As JSON (the admin API's `POST /_admin/faults`, `--fault`, serde): an object with
/// `"kind"` and that kind's fields (see [`FaultKind`]), and optionally
///
/// - `"path"`: a path prefix as sent on the wire: starts with `/`, no query or fragment,
///   visible ASCII, not under `/_admin` (faults never apply to the admin API); every path if
///   left out;
/// - `"client"`: a registered client id; every client if left out;
/// - `"times"`: `1..=4294967295` requests; forever if left out.
///
/// Anything else (an unknown field, a field of another kind, a key given twice, a value out of
/// range) is refused.
///
/// ```
/// use helloflex_emulator::{Fault, FaultKind};
///
/// let emulator = helloflex_emulator::start(Default::default())?;
/// // The next two calls to /news answer 503, then it recovers.
/// emulator.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(2));
/// // Every token request of one client is 800 ms late.
/// emulator.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 800 }).for_client("demo-client"));
/// // The same as JSON, for the admin API (`POST /_admin/faults`) or `--fault`.
/// let json = r#"{"path":"/news","kind":"rate_limit","retry_after":"3","times":1}"#;
/// emulator.add_fault(serde_json::from_str::<Fault>(json).unwrap());
/// emulator.clear_faults();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Applies to request paths starting with this (all paths if absent): starts with `/`.
    pub path: Option<String>,
    /// Applies to requests of this client (by bearer token, or HTTP Basic on the token endpoint):
    /// a registered client.
    pub client: Option<String>,
    /// How many requests it hits (at least 1); forever if absent.
    pub times: Option<u32>,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a fault does. As JSON, `"kind"` is the variant in snake_case (`rate_limit`; the older
/// kebab-case `rate-limit` and `slow-drip` are still accepted) beside the variant's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answers late (then normally).
    Latency {
        /// Delay in milliseconds, `1..=3600000` (for never, use [`FaultKind::Hang`]).
        ms: u64,
    },
    /// Answers with this status and a small JSON body instead.
    Status {
        /// The status code, `200..=599` (a 1xx is not a final answer: the server would send a
        /// 500 instead).
        status: u16,
    },
    /// Answers 429 with `Retry-After`.
    RateLimit {
        /// The header's value, as sent (`"3"`, an HTTP date, or junk): any text a header can
        /// carry (visible ASCII, spaces, tabs). For a 429 without the header, use
        /// `Status { status: 429 }`.
        retry_after: String,
    },
    /// Closes the connection without answering.
    Drop,
    /// Accepts the request and never answers (until the emulator stops).
    Hang,
    /// Answers normally, one body byte every `ms_per_byte` milliseconds.
    SlowDrip {
        /// Delay between bytes, `0..=60000` (0: one byte a chunk, without delay).
        ms_per_byte: u64,
    },
    /// Announces the full body length, sends half of it, closes the connection.
    Truncate,
    /// Answers with a redirect.
    Redirect {
        /// 301, 302, 303, 307 or 308; in JSON, 302 when left out.
        status: u16,
        /// The `Location`: a path starting with one `/` (`//host/x` and `/\host/x` name another
        /// host), or an absolute `http://` or `https://` URL without user info; no fragment.
        location: String,
    },
}

impl Fault {
    /// A fault on every request whose path starts with `path`.
    pub fn on_path(path: &str, kind: FaultKind) -> Self {
        Self { path: Some(path.into()), client: None, times: None, kind }
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Only requests of `client`.
    pub fn for_client(mut self, client: &str) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Reads a fault from JSON (as the admin API and `--fault` take it), refusing what cannot
    /// work; the refusals name fields as in the JSON (`path`, `status`).
    ///
    /// ```
    /// use helloflex_emulator::{Fault, FaultKind};
    ///
    /// let fault = Fault::parse(r#"{"path": "/news", "kind": "redirect", "location": "/elsewhere"}"#);
    /// assert_eq!(fault.unwrap().kind, FaultKind::Redirect { status: 302, location: "/elsewhere".into() });
    /// let refused = Fault::parse(r#"{"path": "news", "kind": "status", "status": 99}"#).unwrap_err();
    /// assert_eq!(refused[0].to_string(), r#"path: must start with "/" (got "news")"#);
    /// assert_eq!(refused[1].to_string(), "status: must be 200..=599 (got 99)");
    /// ```
    pub fn parse(json: &str) -> Result<Fault, Vec<Refusal>> {
        let (value, repeated) = parse_json(json.as_bytes())
            .map_err(|e| vec![Refusal::new("", format!("must be JSON, e.g. {EXAMPLE} ({e})"))])?;
        if !repeated.is_empty() {
            return Err(repeated);
        }
        Self::from_value(&value)
    }

    /// Reads a fault from a JSON value; the refusals name fields relative to it.
    pub(crate) fn from_value(value: &Value) -> Result<Fault, Vec<Refusal>> {
        let what = format!("a JSON object (one fault), e.g. {EXAMPLE}");
        let mut fields = Fields::of(value, "", &what).map_err(|r| vec![r])?;
        let path = fields.string("path", "a path starting with \"/\"");
        if let Some(problem) = path.and_then(path_problem) {
            fields.refuse("path", problem);
        }
        let client = fields.string("client", "a registered client id");
        let times = fields.int::<u32>("times", &TIMES);
        let kind = FaultKind::read(&mut fields);
        let refusals = fields.finish();
        match kind {
            Some(kind) if refusals.is_empty() => Ok(Fault {
                path: path.map(str::to_owned),
                client: client.map(str::to_owned),
                times,
                kind,
            }),
            _ => Err(refusals),
        }
    }

    /// What cannot work in this fault, registered clients aside (see
    /// [`EmulatorConfig::check_fault`](crate::EmulatorConfig::check_fault)).
    pub(crate) fn problems(&self) -> Vec<Refusal> {
        let mut refusals = Vec::new();
        if let Some(problem) = self.path.as_deref().and_then(path_problem) {
            refusals.push(Refusal::new("path", problem));
        }
        if let Some(problem) = self.times.and_then(|n| outside(n.into(), &TIMES)) {
            refusals.push(Refusal::new("times", problem));
        }
        let kind = match &self.kind {
            FaultKind::Latency { ms } => outside(*ms, &LATENCY_MS).map(|p| ("ms", p)),
            FaultKind::Status { status } => {
                outside((*status).into(), &STATUS_CODES).map(|p| ("status", p))
            }
            FaultKind::RateLimit { retry_after } => {
                retry_after_problem(retry_after).map(|p| ("retry_after", p))
            }
            FaultKind::SlowDrip { ms_per_byte } => {
                outside(*ms_per_byte, &MS_PER_BYTE).map(|p| ("ms_per_byte", p))
            }
            FaultKind::Redirect { status, location } => {
                if let Some(problem) = redirect_status_problem(&Value::from(*status)) {
                    refusals.push(Refusal::new("status", problem));
                }
                location_problem(location).map(|p| ("location", p))
            }
            FaultKind::Drop | FaultKind::Hang | FaultKind::Truncate => None,
        };
        refusals.extend(kind.map(|(field, problem)| Refusal::new(field, problem)));
        refusals
    }

    pub(crate) fn matches(&self, path: &str, client: Option<&str>) -> bool {
        self.times != Some(0)
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
            && self.client.as_deref().is_none_or(|c| client == Some(c))
    }
}

/// A correct fault, shown in refusals.
pub(crate) const EXAMPLE: &str =
    r#"{"path": "/news", "kind": "status", "status": 503, "times": 2}"#;

/// The fault kinds, as JSON names them.
pub(crate) const KINDS: &str =
    "latency, status, rate_limit, drop, hang, slow_drip, truncate, redirect";

/// Every field some kind has (not refused as unknown when the kind itself is refused).
const KIND_FIELDS: &[&str] = &["ms", "status", "retry_after", "ms_per_byte", "location"];

/// `times`: a fault that hits no request never fires.
pub(crate) const TIMES: RangeInclusive<u64> = 1..=u32::MAX as u64;
/// `latency`'s `ms` (0 would change nothing; longer than an hour is `hang`).
pub(crate) const LATENCY_MS: RangeInclusive<u64> = 1..=3_600_000;
/// `status`'s `status`: a final answer (hyper answers 500 in place of a 1xx).
pub(crate) const STATUS_CODES: RangeInclusive<u64> = 200..=599;
/// `slow_drip`'s `ms_per_byte` (0 still sends one byte a chunk).
pub(crate) const MS_PER_BYTE: RangeInclusive<u64> = 0..=60_000;
/// `redirect`'s `status`: the redirects that carry a `Location`.
pub(crate) const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];
/// `redirect`'s `status` when left out.
pub(crate) const DEFAULT_REDIRECT_STATUS: u16 = 302;

impl FaultKind {
    /// Reads `kind` and its fields from a fault's JSON object.
    fn read(fields: &mut Fields<'_>) -> Option<FaultKind> {
        let one_of = format!("one of {KINDS}");
        let name = fields.string("kind", &one_of);
        let Some(name) = fields.require("kind", name, &one_of) else {
            fields.allow(KIND_FIELDS);
            return None;
        };
        match name {
            "latency" => {
                let ms = fields.int("ms", &LATENCY_MS);
                let ms = fields.require("ms", ms, "milliseconds, 1..=3600000")?;
                Some(FaultKind::Latency { ms })
            }
            "status" => {
                let status = fields.int("status", &STATUS_CODES);
                let status = fields.require("status", status, "an HTTP status, 200..=599")?;
                Some(FaultKind::Status { status })
            }
            "rate_limit" | "rate-limit" => {
                let allowed = "the Retry-After value as sent (\"3\", an HTTP date, any text); \
                               for a 429 without it, use {\"kind\": \"status\", \"status\": 429}";
                let retry_after = fields.string("retry_after", allowed);
                if let Some(problem) = retry_after.and_then(retry_after_problem) {
                    fields.refuse("retry_after", problem);
                    return None;
                }
                let retry_after = fields.require("retry_after", retry_after, allowed)?;
                Some(FaultKind::RateLimit { retry_after: retry_after.to_owned() })
            }
            "drop" => Some(FaultKind::Drop),
            "hang" => Some(FaultKind::Hang),
            "truncate" => Some(FaultKind::Truncate),
            "slow_drip" | "slow-drip" => {
                let ms_per_byte = fields.int("ms_per_byte", &MS_PER_BYTE);
                let ms_per_byte =
                    fields.require("ms_per_byte", ms_per_byte, "milliseconds, 0..=60000")?;
                Some(FaultKind::SlowDrip { ms_per_byte })
            }
            "redirect" => {
                let status = match fields.get("status") {
                    None => Some(DEFAULT_REDIRECT_STATUS),
                    Some(value) => match redirect_status_problem(value) {
                        Some(problem) => {
                            fields.refuse("status", problem);
                            None
                        }
                        None => value.as_u64().and_then(|n| u16::try_from(n).ok()),
                    },
                };
                let allowed = "a path starting with \"/\" or an absolute http:// or https:// URL";
                let location = fields.string("location", allowed);
                if let Some(problem) = location.and_then(location_problem) {
                    fields.refuse("location", problem);
                    return None;
                }
                let location = fields.require("location", location, allowed)?;
                Some(FaultKind::Redirect { status: status?, location: location.to_owned() })
            }
            other => {
                fields.refuse("kind", format!("must be {one_of} (got {})", got_str(other)));
                fields.allow(KIND_FIELDS);
                None
            }
        }
    }
}

/// Why a fault's `path` can never match a request, if it cannot.
fn path_problem(path: &str) -> Option<String> {
    let quoted = got_str(path);
    if !path.starts_with('/') {
        Some(format!("must start with \"/\" (got {quoted})"))
    } else if path.starts_with("/_admin") {
        Some(format!(
            "must not be under /_admin: faults never apply to the admin API (got {quoted})"
        ))
    } else if path.contains(['?', '#']) {
        Some(format!(
            "must be a path without a query or fragment: faults match the request path only \
             (got {quoted})"
        ))
    } else if !path.bytes().all(|b| b.is_ascii_graphic()) {
        Some(format!(
            "must be visible ASCII, as the path is sent (percent-encode the rest) (got {quoted})"
        ))
    } else {
        None
    }
}

/// Why a `Retry-After` value cannot be sent, if it cannot.
fn retry_after_problem(value: &str) -> Option<String> {
    http::HeaderValue::from_str(value).is_err().then(|| {
        format!(
            "must be text a header can carry: visible ASCII, spaces, tabs (got {})",
            got_str(value)
        )
    })
}

/// Why a redirect status is not one, if it is not.
fn redirect_status_problem(value: &Value) -> Option<String> {
    let fine = value.as_u64().is_some_and(|n| REDIRECT_STATUSES.iter().any(|s| u64::from(*s) == n));
    (!fine).then(|| {
        let statuses: Vec<String> = REDIRECT_STATUSES.iter().map(u16::to_string).collect();
        format!("must be one of {} (302 when left out) (got {})", statuses.join(", "), got(value))
    })
}

/// Why a redirect `Location` cannot be followed, if it cannot: a path on this host, or an
/// absolute URL as [`absolute_url_problem`] takes it.
fn location_problem(location: &str) -> Option<String> {
    let quoted = got_str(location);
    if !location.starts_with('/') {
        return absolute_url_problem(location).map(|problem| {
            if location.contains("://") {
                problem
            } else {
                format!(
                    "must be a path starting with \"/\" or an absolute http:// or https:// URL, \
                     without a fragment (got {quoted})"
                )
            }
        });
    }
    if location.starts_with("//") || location.starts_with("/\\") {
        // Clients read `//host/x` (and browsers `/\host/x`) as another host, not a path.
        return Some(format!(
            "must be a path starting with a single \"/\": \"//\" or \"/\\\" at the start names \
             another host (got {quoted})"
        ));
    }
    let fine = !location.contains('#')
        && location
            .parse::<http::Uri>()
            .is_ok_and(|uri| uri.scheme().is_none() && uri.authority().is_none());
    (!fine).then(|| {
        format!(
            "must be a path starting with \"/\" or an absolute http:// or https:// URL, \
             without a fragment (got {quoted})"
        )
    })
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = value_once(deserializer)?;
        Fault::from_value(&value).map_err(|refusals| serde::de::Error::custom(one_line(&refusals)))
    }
}

impl<'de> Deserialize<'de> for FaultKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = value_once(deserializer)?;
        let mut fields = Fields::of(&value, "", "a JSON object with a \"kind\"")
            .map_err(serde::de::Error::custom)?;
        let kind = FaultKind::read(&mut fields);
        let refusals = fields.finish();
        match kind {
            Some(kind) if refusals.is_empty() => Ok(kind),
            _ => Err(serde::de::Error::custom(one_line(&refusals))),
        }
    }
}
