//! Swap latency: time from a route's component file being replaced (rename
//! over) to the first `/api/state` response naming the new version, cold
//! (never compiled) and cached (compiled before, in the on-disk cache).
//!
//! `./dev bench-swap` (after `cargo build --release -p framewire`).

use anyhow::{Context, Result, bail};
use framewire_core::wasm::with_custom_section;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMPONENT: &str = "target/wasm-components/wasm32-wasip2/release/framewire_mjpeg.wasm";
const ROUNDS: u32 = 8;

fn state_sha(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"GET /api/state HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let body = out.split_once("\r\n\r\n").context("no body")?.1;
    let v: serde_json::Value = serde_json::from_str(body)?;
    Ok(v["components"][0]["sha256"].as_str().context("no sha256")?.to_string())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn swap_and_wait(addr: SocketAddr, file: &std::path::Path, bytes: &[u8]) -> Result<Duration> {
    let want = sha256(bytes);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    let start = Instant::now();
    std::fs::rename(&tmp, file)?;
    while state_sha(addr)? != want {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("swap never happened");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(start.elapsed())
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!("p50 {:>6.1} ms, max {:>6.1} ms", v[v.len() / 2].as_secs_f64() * 1e3, v[v.len() - 1].as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let base = std::fs::read(COMPONENT).with_context(|| format!("{COMPONENT}: build with cargo build --release -p framewire"))?;
    let variant = |n: u32| with_custom_section(&base, "framewire-variant", &n.to_le_bytes());
    let dir = std::env::temp_dir().join(format!("framewire-swap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("mjpeg.wasm");
    std::fs::write(&file, variant(0))?;
    let mut child = Command::new("target/release/framewire")
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "off", "--camera", "cam=test:64x48@5"])
        .arg("--route")
        .arg(format!("mjpeg={}", file.display()))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    let addr: SocketAddr = line.trim().strip_prefix("framewire listening on http://").context("no URL")?.parse()?;

    let cold: Vec<Duration> = (1..=ROUNDS).map(|i| swap_and_wait(addr, &file, &variant(i))).collect::<Result<_>>()?;
    let cached: Vec<Duration> = (0..ROUNDS).map(|i| swap_and_wait(addr, &file, &variant(i))).collect::<Result<_>>()?;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("component {} ({} KB), {ROUNDS} swaps each:", COMPONENT, base.len() / 1024);
    println!("  cold   (compile + check + smoke instantiation): {}", summary(cold));
    println!("  cached (deserialize + check + smoke instantiation): {}", summary(cached));
    println!("latency = file renamed over -> first /api/state response showing the new SHA-256 (polled every 0.5 ms)");
    Ok(())
}
