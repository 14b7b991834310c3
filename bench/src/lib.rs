//! What framewire's load generators share: the server they start and
//! measure (its CPU and memory from /proc), and their own CPU.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A `framewire serve` started for a measurement; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start `bin serve` on an ephemeral port with `cameras` (`NAME=SPEC`)
    /// and `env`; its log goes to `$TMPDIR/framewire-bench-server.log`.
    pub fn start(bin: &str, cameras: &[String], env: &[(&str, &str)]) -> Result<Server> {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin", "off"]);
        for c in cameras {
            cmd.args(["--camera", c]);
        }
        cmd.envs(env.iter().copied());
        Server::spawn(cmd, "framewire listening on http://")
    }

    /// Run `cmd`, a server that prints `PREFIX ADDR` as its first line.
    pub fn spawn(mut cmd: Command, prefix: &str) -> Result<Server> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(std::env::temp_dir().join("framewire-bench-server.log"))?)
            .spawn()
            .with_context(|| format!("cannot start {program} (build it: cargo build --release -p framewire -p framewire-bench)"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let url = line.trim().strip_prefix(prefix).with_context(|| format!("unexpected output {line:?} (see the server log)"))?;
        Ok(Server { addr: url.parse()?, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("bad VmRSS")?.parse()?)
}

/// CPU seconds this process (the load generator) has used so far.
pub fn self_cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
