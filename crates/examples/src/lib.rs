//! Runnable examples live in `examples/` (`cargo run --example quickstart`).
//!
//! This library also compiles the README's code blocks as doctests, so they cannot rot.

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
