//! How the API is exposed: tokens, bounds, parameter limits.

/// Limits on a run's JSON parameters.
#[derive(Debug, Clone)]
pub struct ParamLimits {
    /// Most keys at any level (default 64).
    pub max_keys: usize,
    /// Most bytes of the serialised parameters (default 16 KiB).
    pub max_bytes: usize,
    /// Deepest nesting (default 8).
    pub max_depth: usize,
    /// Keys refused at any level (default `__proto__`, `constructor`, `prototype`).
    pub forbidden_keys: Vec<String>,
}

impl Default for ParamLimits {
    fn default() -> Self {
        ParamLimits {
            max_keys: 64,
            max_bytes: 16 * 1024,
            max_depth: 8,
            forbidden_keys: ["__proto__", "constructor", "prototype"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// How the API is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bearer tokens that may use the API. Empty: no authentication (loopback only, unless
    /// `allow_open_non_loopback`).
    pub tokens: Vec<String>,
    /// Serve without authentication on a non-loopback address (see [`crate::http::serve`]).
    pub allow_open_non_loopback: bool,
    /// Largest request body (default 64 KiB).
    pub max_body_bytes: usize,
    /// Largest body of a `POST /runs/batch` (default 1 MiB: 1,000 runs of about 1 KiB each).
    pub max_batch_body_bytes: usize,
    /// Limits on run parameters.
    pub params: ParamLimits,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tokens: Vec::new(),
            allow_open_non_loopback: false,
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 1024 * 1024,
            params: ParamLimits::default(),
        }
    }
}

impl HttpOptions {
    /// Requires `Authorization: Bearer <token>` (or `?access_token=`, for event streams).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }
}
