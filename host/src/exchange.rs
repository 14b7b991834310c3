//! One request and its response as the operator sees them: timed to the
//! response head, then counted and written to the access log when the body
//! ends or the client goes (a live stream's end included), with the bytes
//! and frames it sent.

use crate::access_log::{AccessLog, Entry};
use crate::metrics::Metrics;
use crate::pacing::Pace;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Where finished exchanges go.
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub access_log: Option<AccessLog>,
}

/// Set on a response by whoever answered it: the route whose component
/// did, and the account the request was made with.
#[derive(Clone, Default)]
pub struct Served {
    pub route: Option<Arc<str>>,
    pub user: Option<String>,
}

/// The label of responses the host gave itself (refusals, sign-in, 404s).
pub const HOST: &str = "host";

pub struct Exchange {
    observers: Arc<Observers>,
    pace: Arc<Pace>,
    started: Instant,
    at: SystemTime,
    peer: SocketAddr,
    method: hyper::Method,
    target: String,
    version: hyper::Version,
    referer: Option<String>,
    user_agent: Option<String>,
    served: Served,
    status: u16,
}

impl Exchange {
    /// A request has arrived.
    pub fn begin<B>(observers: &Arc<Observers>, req: &hyper::Request<B>, peer: SocketAddr, pace: Arc<Pace>) -> Exchange {
        let header = |name| {
            observers.access_log.as_ref()?;
            req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Exchange {
            observers: observers.clone(),
            pace,
            started: Instant::now(),
            at: SystemTime::now(),
            peer,
            method: req.method().clone(),
            // Only the access log needs the target: no copy without one.
            target: match observers.access_log {
                Some(_) => req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
                None => String::new(),
            },
            version: req.version(),
            referer: header(hyper::header::REFERER),
            user_agent: header(hyper::header::USER_AGENT),
            served: Served::default(),
            status: 0,
        }
    }

    /// Its response head is ready to go.
    pub fn head<B>(&mut self, resp: &hyper::Response<B>) {
        self.status = resp.status().as_u16();
        if let Some(served) = resp.extensions().get::<Served>() {
            self.served = served.clone();
        }
        self.observers.metrics.response_head(self.route(), self.started.elapsed().as_secs_f64());
    }

    fn route(&self) -> &str {
        self.served.route.as_deref().unwrap_or(HOST)
    }
}

impl Drop for Exchange {
    /// The body has ended, or the client has gone.
    fn drop(&mut self) {
        let bytes = self.pace.bytes_sent();
        self.observers.metrics.response_end(self.route(), self.status, bytes);
        if let Some(log) = &self.observers.access_log {
            let frames = self.pace.frames();
            log.write(&Entry {
                peer: self.peer.ip(),
                user: self.served.user.as_deref(),
                at: self.at,
                method: self.method.as_str(),
                target: &self.target,
                version: self.version,
                status: self.status,
                bytes,
                referer: self.referer.as_deref(),
                user_agent: self.user_agent.as_deref(),
                duration: self.started.elapsed(),
                frames: (frames > 0).then_some(frames),
            });
        }
    }
}
