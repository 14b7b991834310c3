//! `GET /metrics`: what an operator graphs and alerts on, in the
//! OpenMetrics text format. Request, swap and refusal counters are updated
//! where those happen; camera, instance and process figures are read from
//! their owners at scrape time, so nothing is counted twice.

use crate::frames::Feeds;
use crate::runtime::HostInfo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwapLabels {
    pub route: String,
    /// `ok` or `refused`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Thread {
    pub thread: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

type Histograms = Family<RouteLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    head_seconds: Histograms,
    bytes: Family<RouteLabel, Counter>,
    swaps: Family<SwapLabels, Counter>,
    refused: Family<Reason, Counter>,
    connections: Family<Thread, Gauge>,
}

/// Why the host answered a request itself instead of a handler.
pub mod refusal {
    /// Every instance slot is taken (503).
    pub const INSTANCES: &str = "instances";
    /// The client holds its share of live streams (429).
    pub const CLIENT_STREAMS: &str = "client_streams";
    /// The host serves all the live streams it may (503).
    pub const HOST_STREAMS: &str = "host_streams";
    /// The declared request body is too large (413).
    pub const BODY_SIZE: &str = "body_size";
}

impl Metrics {
    pub fn new(host: Arc<HostInfo>) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register("framewire_http_requests", "HTTP responses by route and status, counted when they end", requests.clone());
        let head_seconds: Histograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_1, 4.0, 10)));
        registry.register(
            "framewire_http_response_head_seconds",
            "Time from a request's arrival to its response head, by route",
            head_seconds.clone(),
        );
        let bytes = Family::default();
        registry.register("framewire_http_response_body_bytes", "Response body bytes sent, by route", bytes.clone());
        let swaps = Family::default();
        registry.register("framewire_component_swaps", "Component swap attempts by route and result (ok, refused)", swaps.clone());
        let refused = Family::default();
        registry.register("framewire_refused_requests", "Requests the host answered itself for lack of room, by reason", refused.clone());
        let connections = Family::default();
        registry.register("framewire_http_connections", "Connections open now, by the HTTP thread serving them", connections.clone());
        registry.register_collector(Box::new(Cameras(host.feeds.clone())));
        registry.register_collector(Box::new(Instances(host)));
        registry.register_collector(Box::new(Process));
        registry.register_collector(Box::new(MediaReads));
        Arc::new(Metrics { registry, requests, head_seconds, bytes, swaps, refused, connections })
    }

    pub fn response_head(&self, route: &str, seconds: f64) {
        self.head_seconds.get_or_create(&RouteLabel { route: route.to_string() }).observe(seconds);
    }

    pub fn response_end(&self, route: &str, status: u16, body_bytes: u64) {
        self.requests.get_or_create(&RouteStatus { route: route.to_string(), status }).inc();
        self.bytes.get_or_create(&RouteLabel { route: route.to_string() }).inc_by(body_bytes);
    }

    pub fn swap(&self, route: &str, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.swaps.get_or_create(&SwapLabels { route: route.to_string(), result }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// HTTP thread `thread`'s count of open connections, which the
    /// acceptor balances on (see `server`).
    pub fn connections(&self, thread: u32) -> Gauge {
        self.connections.get_or_create(&Thread { thread }).clone()
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Per camera: what `/api/state` shows, as series.
#[derive(Debug)]
struct Cameras(Arc<Feeds>);

impl Collector for Cameras {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let feeds: Vec<_> = self.0.iter().collect();
        let gauge = |f: &dyn Fn(&crate::frames::Feed) -> f64| -> Vec<ConstGauge<f64>> {
            feeds.iter().map(|feed| ConstGauge::new(f(feed))).collect()
        };
        let counter = |f: &dyn Fn(&crate::frames::Stats) -> u64| -> Vec<ConstCounter<u64>> {
            feeds.iter().map(|feed| ConstCounter::new(f(&feed.stats))).collect()
        };
        let labels: Vec<[(&str, &str); 1]> = feeds.iter().map(|f| [("camera", f.name.as_str())]).collect();
        family(&mut encoder, "framewire_camera_fps", "Frames a second the camera delivers, measured", &labels, gauge(&|f| f.stats.measured_fps() as f64))?;
        family(&mut encoder, "framewire_camera_target_fps", "Frames a second the camera was asked for", &labels, gauge(&|f| f.target_fps as f64))?;
        family(&mut encoder, "framewire_camera_viewers", "Live subscriptions to the camera", &labels, gauge(&|f| f.stats.clients.load(Relaxed) as f64))?;
        family(&mut encoder, "framewire_camera_frames_captured", "Frames taken from the source", &labels, counter(&|s| s.captured.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_frames_encoded", "JPEG encoder calls, no-signal cards included", &labels, counter(&|s| s.encoded.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_frames_passed_through", "Frames published as the source sent them", &labels, counter(&|s| s.passed_through.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_frames_dropped", "Broken frames from the source, never served", &labels, counter(&|s| s.dropped.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_bytes_sent", "JPEG bytes handed to responses (streams and snapshots)", &labels, counter(&|s| s.bytes_sent.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_bytes_published", "JPEG bytes published (a network source's bitrate: rate() of this)", &labels, counter(&|s| s.bytes_published.load(Relaxed)))?;
        family(&mut encoder, "framewire_camera_reconnects", "Times the source was reopened after failing", &labels, counter(&|s| s.reconnects.load(Relaxed)))?;
        // Recording cameras only.
        let recording: Vec<_> = feeds.iter().filter_map(|f| Some((f.name.as_str(), f.recording.get()?))).collect();
        let labels: Vec<[(&str, &str); 1]> = recording.iter().map(|(n, _)| [("camera", *n)]).collect();
        let counter = |f: &dyn Fn(&crate::record::State) -> &std::sync::atomic::AtomicU64| -> Vec<ConstCounter<u64>> {
            recording.iter().map(|(_, r)| ConstCounter::new(f(r).load(Relaxed))).collect()
        };
        let failed = recording.iter().map(|(_, r)| ConstGauge::new(r.error().is_some() as i64)).collect();
        family(&mut encoder, "framewire_recording_failed", "1 while recording is stopped by a write error (a full disk)", &labels, failed)?;
        family(&mut encoder, "framewire_recording_frames_written", "Frames written to recordings", &labels, counter(&|r| &r.frames_written))?;
        family(&mut encoder, "framewire_recording_bytes_written", "Bytes written to recordings", &labels, counter(&|r| &r.bytes_written))?;
        family(&mut encoder, "framewire_recording_segments", "Recording files finished", &labels, counter(&|r| &r.segments_finished))?;
        family(&mut encoder, "framewire_recording_frames_dropped", "Frames not recorded: the recorder fell behind or could not write", &labels, counter(&|r| &r.frames_dropped))?;
        family(&mut encoder, "framewire_recording_frames_encoded", "H.264 encoder calls for recording (JPEG sources only)", &labels, counter(&|r| &r.frames_encoded))?;
        Ok(())
    }
}

/// One descriptor, then one labelled series per value.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[[(&str, &str); 1]],
    values: Vec<M>,
) -> Result<(), std::fmt::Error> {
    let Some(first) = values.first() else { return Ok(()) };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (label, value) in labels.iter().zip(&values) {
        value.encode(metric.encode_family(label)?)?;
    }
    Ok(())
}

struct Instances(Arc<HostInfo>);

impl std::fmt::Debug for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instances")
    }
}

impl Collector for Instances {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(self.0.instances_in_use());
        gauge.encode(encoder.encode_descriptor("framewire_instances_in_use", "Handler instances alive now", None, gauge.metric_type())?)
    }
}

/// Media reads by where they ran: at once from the page cache on the HTTP
/// thread, or on the blocking pool (data not in the page cache, or a
/// filesystem that cannot say).
#[derive(Debug)]
struct MediaReads;

impl Collector for MediaReads {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = [&crate::mediafs::READS_INLINE, &crate::mediafs::READS_POOLED].map(|c| ConstCounter::new(c.load(Relaxed)));
        let labels = [[("path", "inline")], [("path", "pool")]];
        family(&mut encoder, "framewire_media_reads", "Media file reads: inline from the page cache, or on the blocking pool", &labels, values.into())
    }
}

/// The process's CPU, memory, files and threads, from /proc.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else { return Ok(()) };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor("process_cpu_seconds", "User and system CPU time", None, cpu.metric_type())?)?;
        for (name, help, value) in [
            ("process_resident_memory_bytes", "Resident set size", p.rss_bytes),
            ("process_open_fds", "Open file descriptors", p.open_fds),
            ("process_threads", "Threads", p.threads),
        ] {
            let g = ConstGauge::new(value as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
}

impl ProcessStats {
    /// None where there is no /proc.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            rss_bytes: rss_pages * rustix::param::page_size() as u64,
            open_fds: std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0),
            threads: field(20)?,
        })
    }
}
