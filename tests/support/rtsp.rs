//! A local RTSP server for tests: GStreamer's, through Debian's Python
//! (`support/rtsp_server.py`; `./dev setup` installs python3-gi,
//! gir1.2-gst-rtsp-server-1.0 and the plugins). It serves `/jpeg` (320x240
//! JPEG) and `/h264` (640x480 H.264) on loopback, and is killed when dropped.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Debian's interpreter, which has `gi`; another `python3` on PATH may not.
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/support/rtsp_server.py");

pub struct RtspServer {
    pub port: u16,
    child: Child,
}

impl RtspServer {
    /// Start on `port` (0: any free one); returns once it listens.
    pub fn start(port: u16) -> Result<RtspServer> {
        Self::start_with(port, None)
    }

    /// As [`RtspServer::start`], every stream needing `user` (`NAME:PASSWORD`) by Digest.
    pub fn start_with(port: u16, user: Option<&str>) -> Result<RtspServer> {
        let mut child = Command::new(PYTHON)
            .arg(SCRIPT)
            .arg(port.to_string())
            .args(user)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {PYTHON} {SCRIPT}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let Some(port) = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()) else {
            let _ = child.kill();
            bail!("the RTSP server did not start (needs python3-gi and gir1.2-gst-rtsp-server-1.0): {line:?}");
        };
        Ok(RtspServer { port, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
