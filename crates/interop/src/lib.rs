//! The interop tests live in `tests/`; they start `server/server.mjs` (oidc-provider) themselves.
