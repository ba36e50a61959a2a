//! `Retry-After` (RFC 9110 section 10.2.3): delay-seconds or an HTTP date.

use std::time::Duration;

use http::HeaderMap;
use http::header::{DATE, RETRY_AFTER};

/// Reads `Retry-After` as a delay. An HTTP date is measured against the response's own `Date`
/// header (the server's clock against itself, immune to local clock skew); without a `Date`
/// header a date cannot be turned into a delay and is ignored. Negative or unreadable values
/// are ignored; a date in the past is a zero delay.
///
/// ```
/// use std::time::Duration;
/// use helloflex_core::machines::retry_after;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "120".parse()?);
/// assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
/// // A date is measured against the response's own `Date` (immune to local clock skew).
/// headers.insert("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".parse()?);
/// headers.insert("date", "Sun, 06 Nov 1994 08:49:07 GMT".parse()?);
/// assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than u64 holds is still "a very long time".
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    let date = parse_http_date(headers.get(DATE)?.to_str().ok()?.trim())?;
    Some(Duration::from_secs(at.saturating_sub(date)))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to seconds since the Unix epoch.
pub(crate) fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(retry: &str, date: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        if let Some(d) = date {
            h.insert(DATE, HeaderValue::from_str(d).unwrap());
        }
        h
    }

    #[test]
    fn seconds_dates_and_junk() {
        assert_eq!(retry_after(&headers("3", None)), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("99999999", None)), Some(Duration::from_secs(99_999_999)));
        assert_eq!(retry_after(&headers("-1", None)), None);
        assert_eq!(retry_after(&headers("abc", None)), None);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:47 GMT", Some(date))),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:00 GMT", Some(date))),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:47 GMT", None)), None);
    }

    #[test]
    fn epoch_arithmetic() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 UTC"), None);
    }
}
