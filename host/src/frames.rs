//! Published frames and the per-camera bus that carries them to clients.
//!
//! Each camera owns one `watch` channel holding its newest frame. Capture
//! replaces the value; readers always see the newest frame and never queue:
//! a slow reader skips frames instead of holding memory or the camera back.

use bytes::Bytes;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One JPEG frame, encoded once and shared by every reader.
#[derive(Debug, Clone)]
pub struct Frame {
    pub sequence: u64,
    pub width: u32,
    pub height: u32,
    /// Capture time, microseconds since the Unix epoch.
    pub captured_at_us: u64,
    pub jpeg: Bytes,
    /// True for the host's "no signal" placeholder.
    pub no_signal: bool,
    /// When it was published: how fresh it is (a device's own capture
    /// time may run on another clock).
    pub published: Instant,
}

pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// What a camera is doing; mirrors the WIT `status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Starting,
    Live,
    /// Open, but nobody watches: nothing is decoded or encoded.
    Idle,
    NoSignal,
    Failed,
}

/// Counters and health of one camera, updated by its capture thread.
#[derive(Debug)]
pub struct Stats {
    /// Frames taken from the source and published.
    pub captured: AtomicU64,
    /// JPEG encoder calls (see [`crate::encode`]), "no signal" cards included.
    pub encoded: AtomicU64,
    /// Frames published as the device's own JPEG, not encoded here.
    pub passed_through: AtomicU64,
    /// Broken frames from the source, dropped unpublished.
    pub dropped: AtomicU64,
    pub clients: AtomicU32,
    /// JPEG bytes handed to responses: relayed parts and frame bodies.
    pub bytes_sent: AtomicU64,
    /// JPEG bytes published (what a network source's bitrate is made of).
    pub bytes_published: AtomicU64,
    /// Times the source was reopened after failing.
    pub reconnects: AtomicU64,
    measured_fps_bits: AtomicU32,
    /// Bits a second published, measured like the frame rate.
    pub bitrate: AtomicU64,
    size: AtomicU64,
    health: Mutex<(Status, Option<String>)>,
    /// What the source delivers, e.g. `MJPEG 640x480@30`.
    format: Mutex<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            captured: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
            passed_through: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            clients: AtomicU32::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_published: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            measured_fps_bits: AtomicU32::new(0),
            bitrate: AtomicU64::new(0),
            size: AtomicU64::new(0),
            health: Mutex::new((Status::Starting, None)),
            format: Mutex::default(),
        }
    }
}

impl Stats {
    /// `n` bytes of this camera's JPEGs handed to a response.
    pub fn count_sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn measured_fps(&self) -> f32 {
        f32::from_bits(self.measured_fps_bits.load(Ordering::Relaxed))
    }
    pub fn set_measured_fps(&self, fps: f32) {
        self.measured_fps_bits.store(fps.to_bits(), Ordering::Relaxed);
    }
    /// Frame size the source delivers (it may differ from the size asked for).
    pub fn size(&self) -> (u32, u32) {
        let v = self.size.load(Ordering::Relaxed);
        ((v >> 32) as u32, v as u32)
    }
    pub fn set_size(&self, (w, h): (u32, u32)) {
        self.size.store(((w as u64) << 32) | h as u64, Ordering::Relaxed);
    }
    pub fn health(&self) -> (Status, Option<String>) {
        self.health.lock().unwrap().clone()
    }
    pub fn set_health(&self, status: Status, error: Option<String>) {
        *self.health.lock().unwrap() = (status, error);
    }
    pub fn format(&self) -> String {
        self.format.lock().unwrap().clone()
    }
    pub fn set_format(&self, format: String) {
        *self.format.lock().unwrap() = format;
    }
}

/// How long a camera keeps capturing after its last viewer leaves: a page
/// reload or a player reconnecting finds it still running.
pub const LINGER: Duration = Duration::from_secs(2);

/// A frame older than this is not shown to a new viewer or sent as a
/// snapshot: the camera is woken and its next frame awaited instead.
pub const FRESH: Duration = Duration::from_millis(500);

/// Whether anyone wants a camera's frames; its capture thread waits on it.
#[derive(Debug, Default)]
struct Demand {
    /// Until when the camera keeps running after its last viewer left.
    linger_until: Mutex<Option<Instant>>,
    wake: Condvar,
}

/// A camera as the HTTP side sees it: a name, its frames and its stats.
#[derive(Debug)]
pub struct Feed {
    pub name: String,
    pub spec: String,
    pub target_fps: f32,
    pub stats: Stats,
    /// Capture even with nobody watching (the camera spec's `always-on`).
    pub always_on: bool,
    /// The camera's recorder, if it records.
    pub recording: std::sync::OnceLock<Arc<crate::record::State>>,
    demand: Demand,
    tx: watch::Sender<Option<Arc<Frame>>>,
}

impl Feed {
    pub fn new(name: &str, spec: &str, (width, height): (u32, u32), target_fps: f32, always_on: bool) -> Arc<Self> {
        let stats = Stats::default();
        stats.set_size((width, height));
        Arc::new(Feed {
            name: name.to_string(),
            spec: spec.to_string(),
            target_fps,
            stats,
            always_on,
            recording: std::sync::OnceLock::new(),
            demand: Demand::default(),
            tx: watch::Sender::new(None),
        })
    }

    /// Make `jpeg` the newest frame; returns its sequence number.
    pub fn publish(&self, jpeg: Bytes, (width, height): (u32, u32), captured: SystemTime, no_signal: bool) -> u64 {
        let sequence = self.tx.borrow().as_ref().map_or(1, |f| f.sequence + 1);
        self.tx.send_replace(Some(Arc::new(Frame {
            sequence,
            width,
            height,
            captured_at_us: unix_micros(captured),
            jpeg,
            no_signal,
            published: Instant::now(),
        })));
        sequence
    }

    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.tx.borrow().clone()
    }

    /// A new reader; counts as a client, and keeps the camera capturing,
    /// until dropped.
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        self.stats.clients.fetch_add(1, Ordering::Relaxed);
        let _guard = self.demand.linger_until.lock().unwrap();
        self.demand.wake.notify_all();
        Subscriber { rx: self.tx.subscribe(), feed: self.clone() }
    }

    /// Whether the camera should capture now.
    pub fn wanted(&self) -> bool {
        self.wanted_with(*self.demand.linger_until.lock().unwrap(), Instant::now())
    }

    fn wanted_with(&self, linger_until: Option<Instant>, now: Instant) -> bool {
        self.always_on || self.stats.clients.load(Ordering::Relaxed) > 0 || linger_until.is_some_and(|t| now < t)
    }

    /// Block the capture thread until the camera is wanted, or `limit` passes.
    pub fn wait_until_wanted(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut linger = self.demand.linger_until.lock().unwrap();
        loop {
            let now = Instant::now();
            if self.wanted_with(*linger, now) || now >= deadline {
                return;
            }
            linger = self.demand.wake.wait_timeout(linger, deadline - now).unwrap().0;
        }
    }

    /// Wake a capture thread waiting in [`Feed::wait_until_wanted`] (to stop it).
    pub fn wake(&self) {
        let _guard = self.demand.linger_until.lock().unwrap();
        self.demand.wake.notify_all();
    }
}

/// One client's view of a feed.
#[derive(Debug)]
pub struct Subscriber {
    rx: watch::Receiver<Option<Arc<Frame>>>,
    feed: Arc<Feed>,
}

impl Subscriber {
    /// The newest frame with a sequence above `after`, or `None` if none
    /// comes within `timeout`. For a first frame (`after` 0) the current one
    /// is taken only if it is [`FRESH`]: a camera just woken from idle
    /// still holds its last frame from before.
    pub async fn next(&mut self, after: u64, timeout: Duration) -> Option<Arc<Frame>> {
        tokio::time::timeout(timeout, self.newer(after)).await.ok().flatten()
    }

    /// Like [`Subscriber::next`] with no time limit (no timer per frame):
    /// `None` only once the camera is gone for good.
    pub async fn newer(&mut self, after: u64) -> Option<Arc<Frame>> {
        loop {
            if let Some(f) = self.rx.borrow_and_update().as_ref()
                && f.sequence > after
                && (after > 0 || f.published.elapsed() <= FRESH)
            {
                return Some(f.clone());
            }
            self.rx.changed().await.ok()?;
        }
    }

    /// The current frame if its sequence is above `after`, without waiting.
    pub fn current_after(&mut self, after: u64) -> Option<Arc<Frame>> {
        self.rx.borrow_and_update().as_ref().filter(|f| f.sequence > after).cloned()
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut linger = self.feed.demand.linger_until.lock().unwrap();
        *linger = Some(Instant::now() + LINGER);
        self.feed.stats.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All configured cameras, in configuration order.
#[derive(Debug, Default)]
pub struct Feeds {
    list: Vec<Arc<Feed>>,
}

impl Feeds {
    pub fn new(list: Vec<Arc<Feed>>) -> Self {
        Feeds { list }
    }
    pub fn get(&self, name: &str) -> Option<&Arc<Feed>> {
        self.list.iter().find(|f| f.name == name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Feed>> {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_skip_to_newest_and_count_as_clients() {
        let feed = Feed::new("t", "test", (2, 2), 30.0, false);
        let mut sub = feed.subscribe();
        assert_eq!(feed.stats.clients.load(Ordering::Relaxed), 1);
        assert!(sub.next(0, Duration::from_millis(10)).await.is_none(), "no frame yet");
        for i in 0..5u8 {
            feed.publish(Bytes::from(vec![i]), (2, 2), SystemTime::now(), false);
        }
        let f = sub.next(1, Duration::from_millis(10)).await.unwrap();
        assert_eq!((f.sequence, &f.jpeg[..]), (5, &[4u8][..]), "newest frame, older ones skipped");
        assert!(sub.next(5, Duration::from_millis(10)).await.is_none(), "nothing newer");
        let feed2 = feed.clone();
        let waiter = tokio::spawn(async move {
            let mut sub = feed2.subscribe();
            sub.next(5, Duration::from_secs(5)).await.map(|f| f.sequence)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.publish(Bytes::from_static(b"n"), (2, 2), SystemTime::now(), false);
        assert_eq!(waiter.await.unwrap(), Some(6), "a waiter wakes for the next frame");
        drop(sub);
        assert_eq!(feed.stats.clients.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn first_next_returns_current_frame() {
        let feed = Feed::new("t", "test", (2, 2), 30.0, false);
        feed.publish(Bytes::from_static(b"x"), (2, 2), SystemTime::now(), false);
        let mut sub = feed.subscribe();
        assert_eq!(sub.next(0, Duration::ZERO).await.unwrap().sequence, 1);
    }
}

#[cfg(test)]
mod demand_tests {
    use super::*;

    #[test]
    fn a_viewer_wakes_the_camera_which_lingers_after_it_leaves() {
        let feed = Feed::new("t", "test", (2, 2), 30.0, false);
        assert!(!feed.wanted(), "nobody watches a new camera");
        let waiter = {
            let feed = feed.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                feed.wait_until_wanted(Duration::from_secs(10));
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let sub = feed.subscribe();
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(5), "woken by the subscription, not the timeout ({waited:?})");
        assert!(feed.wanted());
        drop(sub);
        assert!(feed.wanted(), "lingers after the last viewer");
        let until = feed.demand.linger_until.lock().unwrap().unwrap();
        assert!(!feed.wanted_with(Some(until), until), "and stops after LINGER");
        assert!(Feed::new("a", "test", (2, 2), 30.0, true).wanted(), "always-on");
    }
}
