//! The OpenAPI document.

use axum::Json;
use serde_json::{Value, json};

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 document of this API.
#[must_use]
pub fn openapi_document() -> Value {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let run = json!({"$ref": "#/components/schemas/Run"});
    let resp = |desc: &str, schema: &Value| json!({"description": desc, "content": {"application/json": {"schema": schema}}});
    let errors = |codes: &[u16]| -> serde_json::Map<String, Value> {
        codes
            .iter()
            .map(|c| (c.to_string(), resp("error", &err)))
            .collect()
    };
    let with = |mut base: serde_json::Map<String, Value>, codes: &[u16]| {
        base.extend(errors(codes));
        Value::Object(base)
    };
    let one = |code: u16, r: Value| {
        let mut m = serde_json::Map::new();
        m.insert(code.to_string(), r);
        m
    };
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let sse = json!({"description": "server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    let text =
        json!({"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}});
    let rate_limit = json!({"type": "object", "required": ["max", "per"], "additionalProperties": false,
        "properties": {"max": {"type": "integer", "minimum": 0, "description": "starts per window (0 is read as 1)"},
            "per": {"type": "integer", "minimum": 0, "description": "the window, in milliseconds"},
            "burst": {"type": "integer", "minimum": 0, "description": "with a burst: a token bucket of this size, refilled at max per window"}}});
    let rate_or_null =
        json!({"oneOf": [{"$ref": "#/components/schemas/RateLimit"}, {"type": "null"}]});
    let name_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let limits_body = json!({"type": "object", "additionalProperties": false, "properties": {
        "limit": {"type": ["integer", "null"], "minimum": 0}, "max_length": {"type": ["integer", "null"], "minimum": 0},
        "per_key": {"type": ["integer", "null"], "minimum": 0},
        "rate": rate_or_null.clone(), "key_rate": rate_or_null.clone()}});
    let limits_path = json!({"parameters": [name_param("name")],
        "patch": {"summary": "Change a queue's limits while it runs: each field given sets it, null lifts it, a field left out is unchanged",
            "requestBody": {"required": true, "content": {"application/json": {"schema": limits_body}}},
            "responses": with(one(200, resp("the queue", &json!({"type": "object", "required": ["name"]}))), &[400, 401, 404, 422])}});
    let kind_rate_path = json!({"parameters": [name_param("kind")],
        "put": {"summary": "Set a kind's rate limit over all queues (the runs whose label is the kind), or lift it with null",
            "requestBody": {"required": true, "content": {"application/json": {"schema": rate_or_null}}},
            "responses": with(one(200, resp("every kind's rate limit", &json!({"type": "object", "required": ["kind_rates"]}))), &[400, 401, 422])}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "runwarden", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "RateLimit": rate_limit,
                "Error": {"type": "object", "required": ["error_code", "detail", "timestamp"],
                    "properties": {"error_code": {"type": "string"}, "detail": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}}},
                "Run": {"type": "object", "required": ["id", "label", "name", "status", "created_at", "attempt", "queue"],
                    "properties": {"id": {"type": "string"}, "label": {"type": "string"}, "name": {"type": "string"},
                        "status": {"type": "string", "enum": ["queued", "running", "completed", "failed", "cancelled"]},
                        "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
                        "attempt": {"type": "integer"}, "queue": {"type": "string"}, "params": {"type": "object"}, "error": {},
                        "cancelled_by": {"type": ["string", "null"], "enum": ["caller", "drain_deadline", "shutdown", "replaced", null]},
                        "progress": {}, "result": {}, "exit_code": {}, "partition_key": {"type": ["string", "null"]},
                        "snoozes": {"type": "integer", "description": "times the job asked to run again later (not attempts)"},
                        "next_attempt_at": {"type": ["string", "null"], "description": "when a run waiting for a retry or a snooze may start again"}}},
                "RunPage": {"type": "object", "required": ["runs", "total", "limit", "offset"],
                    "properties": {"runs": {"type": "array", "items": run}, "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                        "next": {"type": ["string", "null"], "description": "the cursor of the next page (pass as after), when this page is full"}}},
                "StartRun": {"type": "object", "required": ["kind"], "additionalProperties": false,
                    "properties": {"kind": {"type": "string"}, "params": {"type": "object"}, "label": {"type": "string"}, "name": {"type": "string"},
                        "queue": {"type": "string"}, "priority": {"type": "integer"}, "idempotency_key": {"type": "string"}, "partition_key": {"type": "string"}, "timeout_ms": {"type": "integer"},
                        "unique": {"type": "object", "description": "with idempotency_key: the holder's statuses that conflict, a period in ms, and on_conflict", "properties": {
                            "states": {"type": "array", "items": {"type": "string"}}, "period": {"type": "integer"}, "on_conflict": {"type": "string", "enum": ["return_existing", "replace"]}}}}},
                "StartRuns": {"type": "object", "required": ["runs"], "additionalProperties": false,
                    "properties": {"runs": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/StartRun"},
                        "description": "without idempotency keys"}}},
                "BatchResults": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array",
                    "description": "one per run, in order: {id} or {error_code, detail}", "items": {"type": "object"}}}},
                "CancelResults": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array",
                    "description": "one per matching run, oldest first: {run_id, outcome} or {run_id, error_code, detail}", "items": {"type": "object", "required": ["run_id"]}}}},
                "RerunResults": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array",
                    "description": "one per matching run, oldest first: {run_id, id} or {run_id, error_code, detail}", "items": {"type": "object", "required": ["run_id"]}}}},
                "Cancel": {"type": "object", "required": ["run_id", "outcome"], "properties": {"run_id": {"type": "string"}, "outcome": {"type": "string"}}},
                "Logs": {"type": "object", "required": ["run_id", "lines"], "properties": {"run_id": {"type": "string"}, "lines": {"type": "array", "items": {"$ref": "#/components/schemas/LogEntry"}}}},
                "LogEntry": {"type": "object", "required": ["at", "level", "stream", "message", "cut_bytes"], "properties": {
                    "at": {"type": "string"}, "level": {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
                    "stream": {"type": "string", "enum": ["stdout", "stderr", "job"]}, "message": {"type": "string"},
                    "cut_bytes": {"type": "integer", "description": "bytes dropped from a line longer than the capture limit (0: whole)"}}},
                "Health": {"type": "object", "required": ["status", "uptime_secs", "active_runs", "queues", "draining"]},
                "Stats": {"type": "object", "required": ["by_status", "active", "total", "success_rate", "throughput_per_sec", "finished_since_start", "recent"], "properties": {"active": {"type": "integer", "description": "waiting, queued and running, counted with by_status in one answer"},
                    "by_status": {"type": "object", "description": "records held per status (falls when retention prunes)"},
                    "finished_since_start": {"type": "object", "description": "runs that ended since the registry started, per terminal status (never falls)", "properties": {"completed": {"type": "integer"}, "failed": {"type": "integer"}, "cancelled": {"type": "integer"}}},
                    "recent": {"type": "object", "description": "ends per minute over the last hour, oldest first", "properties": {"minutes": {"type": "array", "items": {"type": "object", "required": ["minute", "completed", "failed", "cancelled"]}}}}}},
                "Prune": {"type": "object", "required": ["started", "pruned_before"]}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/runs": {
                "post": {"summary": "Start a run of a registered job kind",
                    "parameters": [{"name": "traceparent", "in": "header", "description": "W3C trace context: the run's span continues this trace (kept on the record as trace_parent; a malformed value is ignored)", "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StartRun"}}}},
                    "responses": with(one(202, resp("accepted; Location names the run", &run)).into_iter().chain(one(200, resp("an existing run with this idempotency key", &run))).collect(), &[400, 401, 413, 415, 422, 429, 503])},
                "get": {"summary": "List runs, newest first",
                    "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}, {"name": "label", "in": "query", "schema": {"type": "string"}},
                        {"name": "queue", "in": "query", "schema": {"type": "string"}}, {"name": "kind", "in": "query", "schema": {"type": "string"}},
                        {"name": "workflow", "in": "query", "schema": {"type": "string"}}, {"name": "created_after", "in": "query", "schema": {"type": "string"}},
                        {"name": "created_before", "in": "query", "schema": {"type": "string"}},
                        {"name": "finished_after", "in": "query", "schema": {"type": "string"}}, {"name": "finished_before", "in": "query", "schema": {"type": "string"}},
                        {"name": "name", "in": "query", "schema": {"type": "string"}}, {"name": "id", "in": "query", "description": "a prefix of the run id", "schema": {"type": "string"}},
                        {"name": "after", "in": "query", "description": "a cursor: the page after this run (the previous page's next)", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "offset", "in": "query", "schema": {"type": "integer"}}],
                    "responses": with(one(200, resp("a page", &json!({"$ref": "#/components/schemas/RunPage"}))), &[401, 422])}
            },
            "/runs/batch": {
                "post": {"summary": "Start many runs of registered job kinds: one transaction, one result per run once committed",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StartRuns"}}}},
                    "responses": with(one(200, resp("one result per run", &json!({"$ref": "#/components/schemas/BatchResults"}))), &[400, 401, 413, 415, 422])}
            },
            "/runs/cancel": {
                "post": {"summary": "Cancel every active run matching a filter (status, label, queue, kind, workflow: at least one), one result per run",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "minProperties": 1,
                        "properties": {"status": {"type": "string", "enum": ["waiting", "queued", "running"]}, "label": {"type": "string"}, "queue": {"type": "string"}, "kind": {"type": "string"}, "workflow": {"type": "string"}}}}}},
                    "responses": with(one(200, resp("one result per matching run", &json!({"$ref": "#/components/schemas/CancelResults"}))), &[400, 401, 413, 415, 422, 503])}
            },
            "/runs/rerun": {
                "post": {"summary": "Re-run every finished run matching a filter (at least one criterion; at most `limit`, 100 by default, 1000 at most), oldest first, one result per run",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "minProperties": 1,
                        "properties": {"status": {"type": "string", "enum": ["completed", "failed", "cancelled"]}, "label": {"type": "string"}, "queue": {"type": "string"},
                            "kind": {"type": "string"}, "workflow": {"type": "string"}, "created_after": {"type": "string"}, "created_before": {"type": "string"},
                            "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}}}}},
                    "responses": with(one(200, resp("one result per matching run", &json!({"$ref": "#/components/schemas/RerunResults"}))), &[400, 401, 413, 415, 422, 503])}
            },
            "/runs/{id}/rerun": {
                "parameters": [id_param],
                "post": {"summary": "Re-run a finished run (submitted by kind) as a new run with the same spec, linked on both records",
                    "responses": with(one(201, resp("the new run", &json!({"type": "object", "required": ["id", "rerun_of"]}))), &[401, 404, 409, 422, 503])}
            },
            "/workflows/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "A workflow or batch: each step's run by step name, counts per status, overall state",
                    "responses": with(one(200, resp("the workflow", &json!({"type": "object", "required": ["id", "state", "counts", "steps"]}))), &[401, 404, 422])}
            },
            "/runs/{id}": {
                "parameters": [id_param],
                "get": {"summary": "One run", "responses": with(one(200, resp("the run", &run)), &[401, 404, 422])},
                "delete": {"summary": "Cancel a run", "responses": with(one(202, resp("cancel accepted", &json!({"$ref": "#/components/schemas/Cancel"}))), &[401, 404, 409, 422])}
            },
            "/runs/{id}/logs": {"parameters": [id_param],
                "get": {"summary": "Log lines (tail or since)", "parameters": [{"name": "tail", "in": "query", "schema": {"type": "integer"}}, {"name": "since", "in": "query", "schema": {"type": "string"}}],
                    "responses": with(one(200, resp("lines", &json!({"$ref": "#/components/schemas/Logs"}))), &[401, 404, 422, 501])}},
            "/runs/{id}/logs/download": {"parameters": [id_param], "get": {"summary": "The whole log file", "responses": with(one(200, text.clone()), &[401, 404, 422, 501])}},
            "/runs/{id}/events": {"parameters": [id_param], "get": {"summary": "Status, progress and log lines live, then `end`; Last-Event-ID resumes", "responses": with(one(200, sse.clone()), &[401, 404, 422])}},
            "/events": {"get": {"summary": "All runs' status events", "responses": with(one(200, sse), &[401])}},
            "/health": {"get": {"summary": "Liveness and queue depths", "responses": with(one(200, resp("health", &json!({"$ref": "#/components/schemas/Health"}))), &[401])}},
            "/stats": {"get": {"summary": "Totals and rates", "responses": with(one(200, resp("stats", &json!({"$ref": "#/components/schemas/Stats"}))), &[401])}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": with(one(200, text), &[401])}},
            "/kinds": {"get": {"summary": "The job kinds this node can start", "responses": with(one(200, resp("kinds", &json!({"type": "object", "required": ["kinds"], "properties": {"kinds": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}))), &[401])}},
            "/schedules": {"get": {"summary": "Every schedule: interval or cron (expression, time zone), next_fire_at, counters", "responses": with(one(200, resp("schedules", &json!({"type": "object", "required": ["schedules"]}))), &[401])}},
            "/queues": {"get": {"summary": "Every queue: limits, rate limit, paused, counts", "responses": with(one(200, resp("queues", &json!({"type": "object", "required": ["queues"]}))), &[401])}},
            "/queues/{name}/pause": {"parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {"summary": "Pause a queue: nothing of it starts; submits still accepted", "responses": with(one(200, resp("the queue", &json!({"type": "object", "required": ["name", "paused"]}))), &[401, 404])}},
            "/queues/{name}/resume": {"parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {"summary": "Resume a paused queue", "responses": with(one(200, resp("the queue", &json!({"type": "object", "required": ["name", "paused"]}))), &[401, 404])}},
            "/queues/{name}/limits": limits_path,
            "/kinds/{kind}/rate": kind_rate_path,
            "/maintenance/prune": {"post": {"summary": "Run retention now", "responses": with(one(202, resp("started", &json!({"$ref": "#/components/schemas/Prune"}))), &[401])}},
            "/openapi.json": {"get": {"security": [], "summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
            "/": {"get": {"security": [], "summary": "The dashboard", "responses": {"200": {"description": "HTML"}}}}
        }
    })
}
