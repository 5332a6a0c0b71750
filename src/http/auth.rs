//! Bearer-token authentication, compared in constant time.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::*;
use super::state::Api;

/// Compares without leaking where the first difference is (only the length).
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is matched without
/// regard to case (RFC 7235), and spaces around the token are ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the request is for one of the server-sent event streams (the routes that end in
/// `/events`, wherever the router is mounted).
fn is_event_stream(req: &Request) -> bool {
    req.extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str().ends_with("/events"))
}

/// A query value with its `%XX` escapes (as `encodeURIComponent` writes them) and `+`
/// decoded; `None` if an escape is malformed or the result is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub(super) async fn authenticate(State(api): State<Api>, req: Request, next: Next) -> Response {
    if api.options.tokens.is_empty() {
        return next.run(req).await;
    }
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    // Browsers' EventSource cannot set headers: event streams, and only they, may pass the
    // token in the query (a token in a URL ends up in access logs).
    let query_token = is_event_stream(&req)
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("access_token="))
                .and_then(percent_decode)
        });
    let offered = header_token.or(query_token);
    let ok = offered.is_some_and(|t| {
        api.options.tokens.iter().fold(false, |found, known| {
            found | constant_time_eq(t.as_bytes(), known.as_bytes())
        })
    });
    if ok {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid bearer token is required",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, percent_decode};

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Fb%3D%3D").as_deref(), Some("a/b=="));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for value in [
            "Bearer tok",
            "bearer tok",
            "BEARER tok",
            "bEaReR  tok ",
            " Bearer tok",
        ] {
            assert_eq!(bearer_token(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearer", "Bearer ", "Bearertok", "tok"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
