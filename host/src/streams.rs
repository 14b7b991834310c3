//! Live streams at once: at most so many per client address, so that one
//! client cannot take every stream, and so many in all, so that the host's
//! memory stays bounded now that a relayed stream holds no instance. A
//! stream holds its [`Slot`] as long as its response body lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Live streams per client address by default.
pub const MAX_PER_CLIENT: u32 = 32;
/// Live streams in all by default.
pub const MAX_TOTAL: u32 = 4096;

pub struct StreamSlots {
    limit: u32,
    /// Count loopback clients too (by default local tools and a reverse
    /// proxy in front, whose clients all share its address, are exempt).
    limit_loopback: bool,
    total_limit: u32,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    per_client: HashMap<IpAddr, u32>,
    total: u32,
}

/// Why a stream gets no slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// This client address holds its share (the limit).
    Client(u32),
    /// The host serves as many streams as it may (the limit).
    Host(u32),
}

/// One live stream's place; given back when dropped.
pub struct Slot {
    slots: Arc<StreamSlots>,
    /// The address it counts against, if any.
    ip: Option<IpAddr>,
}

impl StreamSlots {
    pub fn new(limit: u32, limit_loopback: bool, total_limit: u32) -> Arc<StreamSlots> {
        Arc::new(StreamSlots { limit, limit_loopback, total_limit, held: Mutex::default() })
    }

    /// A slot for a stream to `ip`, unless that address or the host is full.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let mut held = self.held.lock().unwrap();
        if held.total >= self.total_limit {
            return Err(Full::Host(self.total_limit));
        }
        let counted = !ip.is_loopback() || self.limit_loopback;
        if counted {
            let n = held.per_client.entry(ip).or_default();
            if *n >= self.limit {
                return Err(Full::Client(self.limit));
            }
            *n += 1;
        }
        held.total += 1;
        Ok(Slot { slots: self.clone(), ip: counted.then_some(ip) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap();
        held.total -= 1;
        let Some(ip) = self.ip else { return };
        if let Some(n) = held.per_client.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                held.per_client.remove(&ip);
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
        let slots = StreamSlots::new(2, false, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (s1, _s2) = (slots.take(a).unwrap(), slots.take(a).unwrap());
        assert_eq!(slots.take(a).err(), Some(Full::Client(2)), "a third for the same address");
        assert!(slots.take(b).is_ok(), "another address is served");
        drop(s1);
        assert!(slots.take(a).is_ok(), "a slot given back is free again");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let many: Vec<_> = (0..10).map(|_| slots.take(local)).collect();
        assert!(many.iter().all(Result::is_ok), "loopback exempt");
        let strict = StreamSlots::new(1, true, 100);
        let _one = strict.take(local).unwrap();
        assert_eq!(strict.take(local).err(), Some(Full::Client(1)), "--limit-loopback");
    }

    #[test]
    fn a_total_for_everyone_loopback_included() {
        let slots = StreamSlots::new(2, false, 3);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| slots.take(local).unwrap()).collect();
        assert_eq!(slots.take(a).err(), Some(Full::Host(3)));
        assert_eq!(slots.take(local).err(), Some(Full::Host(3)));
        drop(held);
        let _a = slots.take(a).unwrap();
        assert!(slots.take(local).is_ok(), "all given back");
    }
}
