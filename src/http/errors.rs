//! The API's one error shape, `{error_code, detail, timestamp}`, with stable codes, and the request parts that fail with it.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{CancelError, Error, RunId, SubmitError, Timestamp};

/// An API error: its HTTP status, stable code and detail.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    pub(super) fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION", detail)
    }

    /// The error as one item of a batch's results: its code and detail.
    pub(super) fn item(self) -> Value {
        let mut item = json!({"error_code": self.code, "detail": self.detail});
        if let (Some((k, v)), Some(obj)) = (self.extra, item.as_object_mut()) {
            obj.insert(k.to_owned(), v);
        }
        item
    }

    pub(super) fn not_found(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RUN_NOT_FOUND",
            format!("no run with id {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error_code": self.code,
            "detail": self.detail,
            "timestamp": Timestamp::now(),
        });
        if let (Some((k, v)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.insert(k.to_owned(), v);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let (status, code) = match &e {
            SubmitError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "QUEUE_FULL"),
            SubmitError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN"),
            SubmitError::UnknownKind(_) => (StatusCode::BAD_REQUEST, "UNKNOWN_KIND"),
            SubmitError::UnknownQueue(_) => (StatusCode::BAD_REQUEST, "UNKNOWN_QUEUE"),
            SubmitError::BadParams(_)
            | SubmitError::NotRepeatable
            | SubmitError::InvalidSchedule(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION"),
            SubmitError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "STORE"),
            SubmitError::UnknownRun(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            SubmitError::UnknownDependency(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_DEPENDENCY")
            }
            SubmitError::NotFinished { .. } => (StatusCode::CONFLICT, "NOT_FINISHED"),
            SubmitError::NotRerunnable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "NOT_RERUNNABLE"),
            SubmitError::Workflow(_) => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_WORKFLOW"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(nf) => ApiError::not_found(nf.0),
            Error::Submit(s) => s.into(),
            Error::Cancel(CancelError::NotFound(id)) => ApiError::not_found(id),
            Error::Cancel(CancelError::AlreadyFinished { id, status }) => ApiError {
                extra: Some(("status", json!(status))),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "ALREADY_FINISHED",
                    format!("run {id} already {status}"),
                )
            },
            Error::LogsDisabled => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "LOGS_DISABLED", e.to_string())
            }
            Error::UnknownQueue(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "UNKNOWN_QUEUE", e.to_string())
            }
            Error::Timeout { .. } | Error::Unavailable { .. } | Error::NoSuchSupervisor(_) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    e.to_string(),
                )
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                other.to_string(),
            ),
        }
    }
}

pub(super) async fn not_found_route(uri: OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no endpoint {}", uri.0.path()),
    )
}

/// JSON bodies whose rejections use the API's error shape.
pub(super) struct ApiJson<T>(pub(super) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(match rej {
                JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED", e.body_text())
                }
                JsonRejection::MissingJsonContentType(e) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "MALFORMED",
                    e.body_text(),
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "request body too large",
                ),
                other => ApiError::new(other.status(), "MALFORMED", other.body_text()),
            }),
        }
    }
}

pub(super) fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::validation(format!("`{id}` is not a run id")))
}
