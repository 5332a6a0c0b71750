//! With tokens configured, every API endpoint needs a valid bearer token, its scheme in any
//! case (event streams, and only they, may pass it as `access_token`); the dashboard page and the OpenAPI document stay open. Without
//! tokens, the server refuses to start on a non-loopback address unless told to.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use http_support::server;
use runwarden::http::{HttpOptions, ServeError, serve};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_valid_token() {
    let s = server(HttpOptions::default().token("s3cret-token")).await;
    let anon = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/runs"),
        ("POST", "/runs"),
        ("POST", "/runs/batch"),
        ("POST", "/runs/cancel"),
        ("GET", "/health"),
        ("GET", "/stats"),
        ("GET", "/metrics"),
        ("GET", "/events"),
        ("POST", "/maintenance/prune"),
    ] {
        let req = anon
            .request(method.parse().expect("method"), s.url(path))
            .json(&json!({"kind": "sleep"}));
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 401, "{method} {path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error_code"], "UNAUTHORIZED");
    }
    let wrong = anon
        .get(s.url("/runs"))
        .bearer_auth("s3cret-tokeX")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let right = s.client.get(s.url("/runs")).send().await.expect("send");
    assert_eq!(right.status(), 200);
    // The scheme is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let r = anon
            .get(s.url("/runs"))
            .header("authorization", format!("{scheme} s3cret-token"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "scheme {scheme}");
    }
    // A token in the query opens the event streams, and nothing else.
    let id = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "sleep"}))
        .send()
        .await
        .expect("send");
    assert_eq!(id.status(), 202, "a run to stream");
    let id: serde_json::Value = id.json().await.expect("json");
    let id = id["id"].as_str().expect("run id").to_owned();
    for path in ["/events".to_owned(), format!("/runs/{id}/events")] {
        let stream = anon
            .get(s.url(&format!("{path}?access_token=s3cret-token")))
            .send()
            .await
            .expect("send");
        assert_eq!(stream.status(), 200, "{path}");
    }
    for (method, path) in [
        ("GET", "/runs".to_owned()),
        ("GET", format!("/runs/{id}")),
        ("GET", format!("/runs/{id}/logs")),
        ("GET", "/stats".to_owned()),
        ("GET", "/metrics".to_owned()),
        ("POST", "/maintenance/prune".to_owned()),
        ("DELETE", format!("/runs/{id}")),
    ] {
        let r = anon
            .request(
                method.parse().expect("method"),
                s.url(&format!("{path}?access_token=s3cret-token")),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{method} {path} with a query token");
    }
    assert_eq!(
        anon.get(s.url("/")).send().await.expect("send").status(),
        200
    );
    assert_eq!(
        anon.get(s.url("/openapi.json"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_is_refused_on_a_non_loopback_address() {
    let rw = runwarden::Runwarden::start().await.expect("start");
    let public = "0.0.0.0:0".parse().expect("addr");
    match serve(public, rw.clone(), HttpOptions::default()).await {
        Err(ServeError::OpenNonLoopback(a)) => assert_eq!(a, public),
        other => panic!("expected a refusal, got {:?}", other.map(|(a, _)| a)),
    }
    let (addr, task) = serve(public, rw.clone(), HttpOptions::default().token("t"))
        .await
        .expect("with a token");
    assert!(addr.port() > 0);
    task.abort();
    let open = HttpOptions {
        allow_open_non_loopback: true,
        ..HttpOptions::default()
    };
    let (_, task) = serve(public, rw.clone(), open)
        .await
        .expect("explicitly allowed");
    task.abort();
    rw.shutdown(support::STEP).await.expect("shutdown");
}
