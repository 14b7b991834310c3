//! Headless Chromium through chromedriver (WebDriver), for tests of the page
//! in a real browser.

use anyhow::{Context, Result, bail};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A Chromium session with a fresh profile; the driver (and the browser it
/// started) is killed on drop, even when a test fails.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

fn tool(env: &str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| default.into());
    if !path.exists() {
        bail!(
            "{} not found: the browser tests need Debian's chromium and chromium-driver \
             (`./dev setup` installs them; {env} overrides the path)",
            path.display()
        );
    }
    Ok(path)
}

/// What the browser pretends to be.
#[derive(Clone, Copy, Debug)]
pub enum Screen {
    /// A desktop window of this size.
    Desktop(u32, u32),
    /// A phone's viewport (CSS pixels) through Chrome's mobile emulation;
    /// a headless desktop window cannot be made that narrow.
    Phone(u32, u32),
}

impl Browser {
    pub async fn start(screen: Screen) -> Result<Browser> {
        let chromium = tool("FRAMEWIRE_CHROMIUM", CHROMIUM)?;
        let chromedriver = tool("FRAMEWIRE_CHROMEDRIVER", CHROMEDRIVER)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Driver({
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so drop can kill the browser with it.
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", chromedriver.display()))?
        });
        let profile = tempfile::tempdir()?;
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--autoplay-policy=no-user-gesture-required",
                    // The HTTPS tests' servers have self-signed certificates.
                    "--ignore-certificate-errors",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let mut caps = caps.as_object().cloned().expect("capabilities are an object");
        let options = caps["goog:chromeOptions"].as_object_mut().expect("options are an object");
        match screen {
            Screen::Desktop(w, h) => {
                options["args"].as_array_mut().expect("args").push(format!("--window-size={w},{h}").into());
            }
            Screen::Phone(w, h) => {
                options.insert(
                    "mobileEmulation".into(),
                    json!({ "deviceMetrics": { "width": w, "height": h, "pixelRatio": 3.0, "touch": true } }),
                );
            }
        }
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => bail!("no WebDriver session from chromedriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Ok(Browser { client, _driver: driver, _profile: profile })
    }

    /// Run a script; its `return` value as JSON.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        self.client.execute(script, vec![]).await.with_context(|| format!("script failed: {script}"))
    }

    /// Run a script that calls `arguments[arguments.length - 1](value)` when done.
    pub async fn eval_async(&self, script: &str) -> Result<Value> {
        self.client.execute_async(script, vec![]).await.with_context(|| format!("script failed: {script}"))
    }

    /// Poll a script until it returns a truthy value.
    pub async fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(script).await?;
            if !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("") {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {limit:?} waiting for {what} (last value {v})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Log entries of a kind (`browser` = console, `performance` = DevTools
    /// events) since the last call.
    pub async fn log(&self, kind: &'static str) -> Result<Vec<Value>> {
        let v = self.client.issue_cmd(Chromium { path: "se/log", body: json!({ "type": kind }) }).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Console messages at error level (`SEVERE`) since the last call.
    pub async fn console_errors(&self) -> Result<Vec<String>> {
        Ok(self
            .log("browser")
            .await?
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// HTTP responses the page received since the last call.
    pub async fn responses(&self) -> Result<Vec<Response>> {
        let mut out = Vec::new();
        for entry in self.log("performance").await? {
            let Some(text) = entry["message"].as_str() else { continue };
            let Ok(msg) = serde_json::from_str::<Value>(text) else { continue };
            if msg["message"]["method"] == "Network.responseReceived" {
                let r = &msg["message"]["params"]["response"];
                let header = |name: &str| {
                    r["headers"].as_object().and_then(|h| {
                        h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str().map(String::from))
                    })
                };
                out.push(Response {
                    url: r["url"].as_str().unwrap_or_default().to_string(),
                    status: r["status"].as_u64().unwrap_or(0),
                    content_range: header("content-range"),
                });
            }
        }
        Ok(out)
    }

    /// Throttle the network like a slow link (bytes per second each way).
    pub async fn throttle(&self, bytes_per_s: u64, latency_ms: u64) -> Result<()> {
        let body = json!({ "network_conditions": {
            "offline": false, "latency": latency_ms,
            "download_throughput": bytes_per_s, "upload_throughput": bytes_per_s,
        }});
        self.client.issue_cmd(Chromium { path: "chromium/network_conditions", body }).await?;
        Ok(())
    }

    /// Save a PNG of the viewport where test artifacts go.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// End the session; the driver goes when `self` drops.
    pub async fn close(self) -> Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// `target/browser-artifacts` (or under CARGO_TARGET_DIR): never committed.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("browser-artifacts")
}

/// chromedriver in its own process group; killing the group on drop takes
/// the browser with it, even when a test fails half-way.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // A negative pid names the process group.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

/// A response as the browser saw it.
#[derive(Debug, Clone)]
pub struct Response {
    pub url: String,
    pub status: u64,
    pub content_range: Option<String>,
}

/// A chromedriver command outside W3C WebDriver (logs, network
/// conditions): POST `session/{id}/{path}`.
#[derive(Debug)]
struct Chromium {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Chromium {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
