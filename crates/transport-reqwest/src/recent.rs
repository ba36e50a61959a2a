//! The request URLs this thread built lately, by the request URI's text. A service calls the
//! same few URLs over and over; a copy of one already built spares `Url::set_path` parsing
//! and re-encoding the path again and growing the copied origin's buffer on every call.
//!
//! Per thread, so a lookup touches no shared cache line and takes no lock. A `Url` is a pure
//! function of the URI's text, so the entries are right for any transport on the thread. A URL
//! is kept from its second sighting (the first is only remembered by a hash): a service whose
//! every URL is new (ids, unique queries) pays no allocation to keep copies it will not use.

use std::cell::RefCell;

use reqwest::Url;

/// URLs kept per thread: a client's hot paths; the oldest is replaced first.
const KEPT: usize = 8;

/// Longest URL text kept: longer ones (unusual) are built each time.
const LONGEST: usize = 512;

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent { slots: [const { None }; KEPT], next: 0, seen: [0; KEPT], seen_next: 0 })
    };
}

struct Recent {
    slots: [Option<(Key, Url)>; KEPT],
    next: usize,
    /// Hashes of URLs built once and not kept yet.
    seen: [u64; KEPT],
    seen_next: usize,
}

impl Recent {
    /// Whether the URL hashed `hash` was built before (then it is forgotten here, to be kept);
    /// otherwise it is remembered.
    fn seen_before(&mut self, hash: u64) -> bool {
        if let Some(seen) = self.seen.iter_mut().find(|seen| **seen == hash) {
            *seen = 0;
            return true;
        }
        let slot = self.seen_next;
        self.seen[slot % KEPT] = hash;
        self.seen_next = (slot + 1) % KEPT;
        false
    }
}

/// A URL's text, and where its scheme and authority end in it (so the same text split
/// differently is not taken for it).
struct Key {
    text: String,
    scheme: usize,
    authority: usize,
}

impl Key {
    fn spells(&self, parts: &[&str; 4], length: usize) -> bool {
        self.text.len() == length
            && self.scheme == parts[0].len()
            && self.authority == parts[2].len()
            && spells(&self.text, parts)
    }
}

/// The URL of `scheme://authority` followed by `path_and_query`: a copy of one built lately on
/// this thread, or `build`'s, kept when `build` succeeds.
pub(crate) fn url_for(
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    build: impl FnOnce() -> Option<Url>,
) -> Option<Url> {
    let parts = [scheme, "://", authority, path_and_query];
    let length: usize = parts.iter().map(|p| p.len()).sum();
    // `try_with`: a call made while the thread's locals are torn down builds its URL.
    let kept = RECENT
        .try_with(|recent| {
            let recent = recent.try_borrow().ok()?;
            let (_, url) =
                recent.slots.iter().flatten().find(|(key, _)| key.spells(&parts, length))?;
            Some(url.clone())
        })
        .ok()
        .flatten();
    if kept.is_some() {
        return kept;
    }
    let url = build()?;
    if length <= LONGEST {
        let _ = RECENT.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut()
                && recent.seen_before(hash_of(&parts))
            {
                let slot = recent.next;
                let key =
                    Key { text: parts.concat(), scheme: scheme.len(), authority: authority.len() };
                recent.slots[slot % KEPT] = Some((key, url.clone()));
                recent.next = (slot + 1) % KEPT;
            }
        });
    }
    Some(url)
}

/// A hash of `parts`, each with its length (so a different split hashes differently).
fn hash_of(parts: &[&str; 4]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// Whether `text` is `parts` written one after another.
fn spells(text: &str, parts: &[&str; 4]) -> bool {
    let mut rest = text;
    for part in parts {
        match rest.strip_prefix(part) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<Url> {
        Url::parse(text).ok()
    }

    #[test]
    fn a_url_is_kept_from_its_second_sighting_and_copied_after() {
        let mut builds = 0;
        for _ in 0..4 {
            let url = url_for("https", "api.example", "/recent/a?x=1", || {
                builds += 1;
                parsed("https://api.example/recent/a?x=1")
            });
            assert_eq!(url.unwrap().as_str(), "https://api.example/recent/a?x=1");
        }
        assert_eq!(builds, 2);
    }

    #[test]
    fn only_the_same_text_is_taken_for_a_kept_url() {
        let mut builds = 0;
        for _ in 0..3 {
            url_for("https", "api.example", "/same/ab", || {
                builds += 1;
                parsed("https://api.example/same/ab")
            });
        }
        assert_eq!(builds, 2, "kept");
        // The same text split differently, or the same length differing inside: built.
        for (authority, path) in
            [("api.exampl", "e/same/ab"), ("api.exampla", "/same/ab"), ("api.example", "/same/ac")]
        {
            let mut built = false;
            url_for("https", authority, path, || {
                built = true;
                parsed(&format!("https://{authority}{path}"))
            });
            assert!(built, "{authority} {path}");
        }
    }

    #[test]
    fn past_the_urls_kept_each_is_still_its_own() {
        for round in 0..2 {
            for n in 0..(KEPT + 3) {
                let path = format!("/many/{n}");
                let url = url_for("http", "127.0.0.1:9", &path, || {
                    parsed(&format!("http://127.0.0.1:9{path}"))
                });
                assert_eq!(url.unwrap().as_str(), format!("http://127.0.0.1:9{path}"), "{round}");
            }
        }
    }

    #[test]
    fn urls_seen_once_are_not_kept() {
        for n in 0..(3 * KEPT) {
            let path = format!("/once/{n}");
            url_for("http", "127.0.0.1:9", &path, || parsed(&format!("http://127.0.0.1:9{path}")));
        }
        RECENT.with(|recent| assert!(recent.borrow().slots.iter().all(Option::is_none)));
    }

    #[test]
    fn a_failed_build_is_not_kept() {
        assert!(url_for("http", "bad host", "/x", || None).is_none());
        let mut built = false;
        url_for("http", "bad host", "/x", || {
            built = true;
            None
        });
        assert!(built);
    }
}
