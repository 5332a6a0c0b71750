//! Helpers for the HTTP tests: a real server on a loopback port, demo job kinds, an SSE
//! reader, and a checker of responses against the served OpenAPI document.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures_util::StreamExt;
use runwarden::http::{HttpOptions, serve};
use runwarden::{BoxedJob, LogConfig, OnInterrupt, Progress, QueueConfig, Runwarden};
use serde_json::Value;

pub struct Server {
    pub rw: Runwarden,
    pub base: String,
    pub client: reqwest::Client,
    pub doc: Value,
    _logs: super::support::TempDir,
}

/// While set, runs of kind `flaky` fail; otherwise they complete.
pub static FLAKY_FAILS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Job kinds: `sleep` (params.ms, reports progress and logs), `fail`, `flaky` (fails while
/// [`FLAKY_FAILS`] is set), `hold` (until cancelled).
pub async fn server(options: HttpOptions) -> Server {
    let logs = super::support::TempDir::new("http-logs");
    let rw = Runwarden::builder()
        .logs(LogConfig::new(&logs.0))
        .queue("tiny", QueueConfig::limited(1).max_length(0))
        .job_kind("sleep", OnInterrupt::Rerun, |params| {
            let ms = params
                .get("ms")
                .and_then(|v| match v {
                    runwarden::Json::Int(n) => Some(*n as u64),
                    _ => None,
                })
                .unwrap_or(5);
            Ok(BoxedJob::repeatable(move |ctx| async move {
                for i in 1..=4u64 {
                    ctx.info(format!("step {i} of 4"));
                    ctx.report(Progress::items(i, 4));
                    tokio::time::sleep(Duration::from_millis(ms / 4 + 1)).await;
                }
                Ok(())
            }))
        })
        .job_kind("fail", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|ctx| async move {
                ctx.error("about to fail");
                Err::<(), _>(runwarden::JobError::msg("failed on purpose"))
            }))
        })
        .job_kind("flaky", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_ctx| async move {
                if FLAKY_FAILS.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(runwarden::JobError::msg("flaky failed on purpose"));
                }
                Ok(())
            }))
        })
        .job_kind("hold", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|ctx| async move {
                ctx.info("holding until cancelled");
                ctx.cancelled().await;
                Ok(())
            }))
        })
        .start()
        .await
        .expect("runwarden starts");
    let token = options.tokens.first().cloned();
    let (addr, _task) = serve("127.0.0.1:0".parse().expect("addr"), rw.clone(), options)
        .await
        .expect("server starts");
    let base = format!("http://{addr}");
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let doc = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    Server {
        rw,
        base,
        client,
        doc,
        _logs: logs,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` and checks the answer against the operation at `template`.
    pub async fn get(&self, template: &str, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("get");
        self.checked("get", template, r).await
    }

    /// POSTs `body` as JSON to `path` and checks the answer against `template`.
    pub async fn post(&self, template: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("post");
        self.checked("post", template, r).await
    }

    /// Checks a response against the OpenAPI document: the status is declared for this
    /// operation, and a JSON body has the declared schema's required properties. Returns the body.
    pub async fn checked(
        &self,
        method: &str,
        template: &str,
        r: reqwest::Response,
    ) -> (u16, Value) {
        let status = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body: Value = if is_json {
            r.json().await.expect("json body")
        } else {
            Value::Null
        };
        let op = &self.doc["paths"][template][method];
        assert!(
            op.is_object(),
            "{method} {template} is not in the OpenAPI document"
        );
        let declared = &op["responses"][status.to_string()];
        assert!(
            declared.is_object(),
            "{method} {template}: status {status} not declared; body {body}"
        );
        if let Some(schema) = declared["content"]["application/json"]["schema"].as_object() {
            let schema = match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    self.doc["components"]["schemas"][r.rsplit('/').next().unwrap_or("")].clone()
                }
                None => Value::Object(schema.clone()),
            };
            for field in schema["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap_or("");
                assert!(
                    body.get(field).is_some(),
                    "{method} {template} {status}: missing `{field}` in {body}"
                );
            }
        }
        (status, body)
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads server-sent events from a response until `stop` says so (or the stream ends).
pub async fn read_sse(r: reqwest::Response, mut stop: impl FnMut(&Sse) -> bool) -> Vec<Sse> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut bytes = r.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut e = Sse {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            let mut any = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    e.event = v.trim().to_owned();
                    any = true;
                } else if let Some(v) = line.strip_prefix("id:") {
                    e.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    e.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    any = true;
                }
            }
            if any {
                let done = stop(&e);
                out.push(e);
                if done {
                    return out;
                }
            }
        }
    }
    out
}
