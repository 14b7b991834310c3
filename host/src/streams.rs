//! Fair share of live streams: at most so many at once per client address,
//! so that one client cannot hold every instance with open streams. A
//! stream holds its [`Slot`] as long as its response body lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Live streams per client address by default.
pub const MAX_PER_CLIENT: u32 = 32;

pub struct StreamSlots {
    limit: u32,
    /// Count loopback clients too (by default local tools and a reverse
    /// proxy in front, whose clients all share its address, are exempt).
    limit_loopback: bool,
    held: Mutex<HashMap<IpAddr, u32>>,
}

/// One live stream's place; given back when dropped.
pub struct Slot {
    slots: Arc<StreamSlots>,
    ip: Option<IpAddr>,
}

impl StreamSlots {
    pub fn new(limit: u32, limit_loopback: bool) -> Arc<StreamSlots> {
        Arc::new(StreamSlots { limit, limit_loopback, held: Mutex::default() })
    }

    /// A slot for a stream to `ip`, or None when it has `limit` already.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if ip.is_loopback() && !self.limit_loopback {
            return Some(Slot { slots: self.clone(), ip: None });
        }
        let mut held = self.held.lock().unwrap();
        let n = held.entry(ip).or_default();
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot { slots: self.clone(), ip: Some(ip) })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut held = self.slots.held.lock().unwrap();
        if let Some(n) = held.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&ip);
            }
        }
    }
}

/// Whether a response is a live stream (MJPEG): it holds a slot.
pub fn is_live<B>(resp: &hyper::Response<B>) -> bool {
    resp.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/x-mixed-replace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_with_loopback_exempt_unless_asked() {
        let slots = StreamSlots::new(2, false);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (s1, _s2) = (slots.take(a).unwrap(), slots.take(a).unwrap());
        assert!(slots.take(a).is_none(), "a third for the same address");
        assert!(slots.take(b).is_some(), "another address is served");
        drop(s1);
        assert!(slots.take(a).is_some(), "a slot given back is free again");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let many: Vec<_> = (0..10).map(|_| slots.take(local)).collect();
        assert!(many.iter().all(Option::is_some), "loopback exempt");
        let strict = StreamSlots::new(1, true);
        let _one = strict.take(local).unwrap();
        assert!(strict.take(local).is_none(), "--limit-loopback");
    }
}
