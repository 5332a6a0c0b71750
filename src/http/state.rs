//! The state every route shares: the handle, the options, the start time.

use std::sync::Arc;
use std::time::Instant;

use crate::Runwarden;

use super::options::HttpOptions;

#[derive(Clone)]
pub(super) struct Api {
    pub(super) rw: Runwarden,
    pub(super) options: Arc<HttpOptions>,
    pub(super) started: Instant,
}
