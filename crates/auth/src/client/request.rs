//! [`RequestBuilder`]'s methods (the type is defined in `client/mod.rs`): `send` is a plain call
//! on the blocking flavour and `async` on the async one.

use helloflex_core::machines::ApiCall;
use helloflex_core::{ApiResponse, Error};
use serde::Serialize;

use crate::blocking::BlockingTokenManager;
use crate::entropy::jitter_seed;
use crate::nonblocking::AsyncTokenManager;

use super::RequestBuilder;

impl<M> RequestBuilder<'_, M> {
    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.request = self.request.query(key, value);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.request = self.request.json(body);
        self
    }

    /// Adds a header (`Authorization` and `Host` are refused: the SDK sets them).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Declares whether replaying this request after a failure is safe (default: by method).
    pub fn retry_safe(mut self, safe: bool) -> Self {
        self.request = self.request.retry_safe(safe);
        self
    }
}

impl RequestBuilder<'_, BlockingTokenManager> {
    /// Sends the request: a success, or a typed error with the core's classification.
    pub fn send(self) -> Result<ApiResponse, Error> {
        let tokens = self.tokens;
        let call = ApiCall::new(self.request, self.base.clone(), self.retry.clone(), jitter_seed());
        tokens.call_boxed(Box::new(call)).map(ApiResponse::new)
    }
}

impl<'a> RequestBuilder<'a, AsyncTokenManager> {
    /// Sends the request: a success, or a typed error with the core's classification.
    pub fn send(self) -> impl std::future::Future<Output = Result<ApiResponse, Error>> + Send + 'a {
        let call = ApiCall::new(self.request, self.base.clone(), self.retry.clone(), jitter_seed());
        // The drive loop's own future, with no layer around it: the call is boxed (a user's
        // task holds the future beside its own state) and its response typed as the loop ends.
        self.tokens.call_then(Box::new(call), |result| result.map(ApiResponse::new))
    }
}
