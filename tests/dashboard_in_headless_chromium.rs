//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! shows a run appear and complete live (from the event stream, without reloading), shows a
//! run's log, and cancels a running run. A screenshot is saved under the build folder.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them, and so does this
//! test when it runs as root with apt-get available.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64_decode::decode;
use http_support::server;
use runwarden::http::HttpOptions;
use serde_json::{Value, json};
use support::{TempDir, within};

/// A minimal W3C WebDriver client: just the commands this test needs.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base(), self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        v["value"].clone()
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", DRIVER_PORT)
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Elements matching a CSS selector (their WebDriver references).
    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    async fn text(&self, el: &str) -> String {
        self.cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn click(&self, el: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Polls the page (the browser updates it from its event streams) until `css` has an
    /// element whose text satisfies `ok`.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        within(what, async {
            loop {
                for el in self.find_all(css).await {
                    let t = self.text(&el).await;
                    if ok(&t) {
                        return t;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// Opens a run's detail pane by clicking its row. The table is re-rendered from events, so
    /// a row found a moment ago may be stale when clicked: click until the pane shows the run.
    async fn open_run(&self, id: &str) {
        within("the run's detail pane to open", async {
            loop {
                if let Some(row) = self
                    .find_all(&format!("tr[data-id=\"{id}\"]"))
                    .await
                    .first()
                {
                    self.click(row).await;
                }
                for title in self.find_all("#detail-title").await {
                    if self.text(&title).await.contains(id) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }

    /// Runs `script` in the page (W3C "execute sync") and returns its value.
    async fn exec(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Sets a filter control's value and fires the event the page listens for.
    async fn set_filter(&self, id: &str, value: &str, event: &str) {
        let script = format!(
            "const e = document.getElementById({id:?}); e.value = {value:?}; \
             e.dispatchEvent(new Event({event:?}, {{bubbles: true}}));"
        );
        self.exec(&script).await;
    }

    async fn click_id(&self, css: &str) {
        let found = within("an element to click", async {
            loop {
                if let Some(el) = self.find_all(css).await.into_iter().next() {
                    let enabled = self
                        .cmd(
                            reqwest::Method::GET,
                            &format!("/element/{el}/enabled"),
                            None,
                        )
                        .await;
                    if enabled == json!(true) {
                        return el;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        self.click(&found).await;
    }

    async fn save_screenshot(&self, name: &str) {
        let png = self.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).expect("save screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        decode(v.as_str().expect("base64 png"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

const DRIVER_PORT: u16 = 9515 + 37;

fn ensure_chromium() {
    let have = |p: &str| std::path::Path::new(p).exists();
    if have("/usr/bin/chromium") && have("/usr/bin/chromedriver") {
        return;
    }
    // As root on a Debian machine, install them (what `.ci/run` does too).
    let _ = Command::new("apt-get").arg("update").arg("-q").status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        have("/usr/bin/chromium") && have("/usr/bin/chromedriver"),
        "this test needs Debian's chromium and chromium-driver (bash .ci/run installs them)"
    );
}

async fn browser() -> Browser {
    ensure_chromium();
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={DRIVER_PORT}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{DRIVER_PORT}");
    within("chromedriver to answer", async {
        while http.get(format!("{base}/status")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let profile = TempDir::new("chromium-profile");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                     format!("--user-data-dir={}", profile.0.display())]
        }
    }}});
    let v: Value = http
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .await
        .expect("new session")
        .json()
        .await
        .expect("json");
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_owned();
    Browser {
        http,
        session,
        driver,
        _profile: profile,
    }
}

/// Standard base64, for the screenshot (no extra dependency for one decode).
mod base64_decode {
    pub(crate) fn decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let bits: Vec<u8> = s.bytes().filter_map(val).collect();
        let mut out = Vec::with_capacity(bits.len() * 3 / 4);
        for chunk in bits.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
            let bytes = n.to_be_bytes();
            out.extend_from_slice(&bytes[1..chunk.len()]);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_runs_live_their_logs_and_cancels() {
    let _serial = support::one_at_a_time().await;
    let s = server(HttpOptions::default()).await;
    let b = browser().await;
    b.goto(&format!("{}/", s.base)).await;
    b.wait_text("#live", "the page's live stream to open", |t| t == "live")
        .await;

    // A run started through the API appears on the open page and completes there.
    let run: Value = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "sleep", "params": {"ms": 1200}, "label": "browser"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let id = run["id"].as_str().expect("id").to_owned();
    let row = format!("tr[data-id=\"{id}\"] .status");
    b.wait_text(&row, "the run to appear", |t| {
        t == "queued" || t == "running"
    })
    .await;
    b.wait_text(&row, "the run to complete live", |t| t == "completed")
        .await;

    // Its log, in the detail pane.
    b.open_run(&id).await;
    b.wait_text("#detail-log .log-line", "its log lines", |t| {
        t.contains("step 4 of 4")
    })
    .await;
    b.wait_text("#detail-end", "its end", |t| t.contains("completed"))
        .await;

    // Cancel a running run from the page.
    let held: Value = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "hold", "label": "browser"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let hid = held["id"].as_str().expect("id").to_owned();
    let hrow = format!("tr[data-id=\"{hid}\"] .status");
    b.wait_text(&hrow, "the held run to run", |t| t == "running")
        .await;
    b.open_run(&hid).await;
    b.wait_text("#detail-log .log-line", "the held run's log", |t| {
        t.contains("holding")
    })
    .await;
    let cancel = b.find_all("#cancel").await;
    within("the cancel button to be enabled", async {
        loop {
            let enabled = b
                .cmd(
                    reqwest::Method::GET,
                    &format!("/element/{}/enabled", cancel[0]),
                    None,
                )
                .await;
            if enabled == json!(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    b.click(&cancel[0]).await;
    // The page asks first.
    let confirm = b.find_all("#cancel-confirm").await;
    b.click(&confirm[0]).await;
    b.wait_text("#cancel-result", "the cancel answer", |t| {
        t.contains("cancel: signalled")
    })
    .await;
    b.wait_text(&hrow, "the run to show cancelled", |t| t == "cancelled")
        .await;
    let r = s.rw.status(hid.parse().expect("id")).await.expect("status");
    assert_eq!(r.status, runwarden::RunStatus::Cancelled);

    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, png).expect("save screenshot");
    eprintln!("screenshot: {}", path.display());
    b.cmd(reqwest::Method::DELETE, "", None).await;
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}

/// With 2,000 runs of which 7 failed, the console tells the truth: the overview and the failed
/// filter say 7 (counted by the server, not from a page), a failed run's detail shows its
/// error, a re-run of it creates a new run that completes, an empty search says so, a bulk
/// cancel of a filtered selection cancels exactly those runs, and a row clicked while events
/// stream is the row that was meant. Screenshots of the overview, a failed run's detail and
/// the queue view are saved under the build folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_tells_the_truth_at_two_thousand_runs() {
    let _serial = support::one_at_a_time().await;
    let s = server(HttpOptions::default()).await;
    http_support::FLAKY_FAILS.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut ids = Vec::new();
    for i in 0..2000 {
        let kind = if i % 290 == 3 { "flaky" } else { "sleep" };
        let spec = runwarden::RunSpec::new("volume").param("ms", 0i64);
        ids.push(
            s.rw.submit_job(spec, runwarden::Kind(kind))
                .expect("submit"),
        );
    }
    let mut failed = Vec::new();
    for id in &ids {
        let r = within("a run to end", s.rw.wait(*id)).await.expect("wait");
        if r.status == runwarden::RunStatus::Failed {
            failed.push(r.id);
        }
    }
    assert_eq!(failed.len(), 7);
    http_support::FLAKY_FAILS.store(false, std::sync::atomic::Ordering::SeqCst);

    let b = browser().await;
    b.goto(&format!("{}/", s.base)).await;
    b.wait_text("#live", "the page's live stream to open", |t| t == "live")
        .await;

    // The overview counts on the server.
    b.click_id("#tab-overview").await;
    b.wait_text("#ov-failed", "7 failed in the overview", |t| t == "7")
        .await;
    b.wait_text("#ov-completed", "1993 completed", |t| t == "1993")
        .await;
    b.wait_text("#ov-hour-failed", "7 failed in the last hour", |t| t == "7")
        .await;
    b.wait_text(
        "#ov-queues tr[data-queue=\"default\"]",
        "the default queue in the overview",
        |t| t.contains("default"),
    )
    .await;
    b.save_screenshot("dashboard-overview.png").await;

    // The failed filter: exactly the 7, the true total.
    b.click_id("#tab-runs").await;
    b.set_filter("f-status", "failed", "change").await;
    b.wait_text("#runs-total", "a total of 7", |t| t == "7")
        .await;
    within("seven rows", async {
        while b.find_all("#runs tbody tr[data-id]").await.len() != 7 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let one = failed[0].to_string();
    b.open_run(&one).await;
    b.wait_text("#detail-error", "the failed run's error", |t| {
        t.contains("flaky failed on purpose")
    })
    .await;
    b.save_screenshot("dashboard-failed-run.png").await;

    // Re-run it: a new run, which completes.
    b.click_id("#rerun").await;
    let answer = b
        .wait_text("#rerun-result", "the re-run's answer", |t| {
            t.starts_with("re-run: ")
        })
        .await;
    let new_id: runwarden::RunId = answer
        .trim_start_matches("re-run: ")
        .trim()
        .parse()
        .expect("the new run's id");
    let rerun = within("the re-run", s.rw.wait(new_id)).await.expect("wait");
    assert_eq!(rerun.status, runwarden::RunStatus::Completed);
    assert_eq!(rerun.rerun_of, Some(failed[0]));

    // A search that matches nothing says so.
    b.set_filter("f-status", "", "change").await;
    b.set_filter("f-search", "ffffffff", "input").await;
    b.wait_text("#runs-empty", "the empty state", |t| t == "no runs match")
        .await;
    b.set_filter("f-search", "", "input").await;

    // Bulk cancel of a filtered selection: the 5 held runs labelled `bulk`, not the 3 others.
    let hold = |label: &str| {
        s.rw.submit_job(runwarden::RunSpec::new(label), runwarden::Kind("hold"))
            .expect("submit")
    };
    let bulk: Vec<_> = (0..5).map(|_| hold("bulk")).collect();
    let keep: Vec<_> = (0..3).map(|_| hold("keep")).collect();
    b.set_filter("f-label", "bulk", "input").await;
    b.wait_text("#runs-total", "the 5 bulk runs", |t| t == "5")
        .await;
    b.click_id("#bulk-cancel").await;
    b.click_id("#bulk-confirm").await;
    b.wait_text("#bulk-result", "the bulk answer", |t| {
        t == "cancelled 5 of 5"
    })
    .await;
    for id in &bulk {
        let r = within("a bulk run to end", s.rw.wait(*id))
            .await
            .expect("wait");
        assert_eq!(r.status, runwarden::RunStatus::Cancelled);
    }
    for id in &keep {
        assert!(
            s.rw.is_active(*id).await.expect("is_active"),
            "{id} was not selected"
        );
    }

    // Rows stay put while events stream: a row found, then clicked after a second of new
    // runs arriving, opens the run it showed.
    b.set_filter("f-label", "keep", "input").await;
    b.wait_text("#runs-total", "the 3 kept runs", |t| t == "3")
        .await;
    let target = keep[1].to_string();
    let row = within("the kept run's row", async {
        loop {
            if let Some(r) = b
                .find_all(&format!("tr[data-id=\"{target}\"]"))
                .await
                .first()
            {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let streaming = {
        let rw = s.rw.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let spec = runwarden::RunSpec::new("stream").param("ms", 0i64);
                let _ = rw.submit_job(spec, runwarden::Kind("sleep"));
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.click(&row).await;
    b.wait_text("#detail-title", "the clicked run's detail", |t| {
        t.contains(&target)
    })
    .await;
    streaming.await.expect("streaming");

    // The queue view.
    b.click_id("#tab-queues").await;
    b.wait_text(
        "#queues tr[data-queue=\"default\"]",
        "the default queue",
        |t| t.contains("default"),
    )
    .await;
    b.save_screenshot("dashboard-queues.png").await;
    b.cmd(reqwest::Method::DELETE, "", None).await;
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}
