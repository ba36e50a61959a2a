//! The behaviour suite lives in `tests/`; this library is empty.
