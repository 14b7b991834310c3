//! Writing a response body with back-pressure. A client that accepts
//! nothing is the host's to drop (framewire closes its connection after
//! `--stall-timeout-s`): the body then reports it closed.

use spin_sdk::http::{OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::clocks::monotonic_clock;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

#[derive(Debug)]
pub enum Error {
    Closed,
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Closed => f.write_str("client closed the connection"),
            Error::Failed(e) => write!(f, "write failed: {e}"),
        }
    }
}

impl Error {
    /// Report a body that ended early, on stderr (the host's log), unless
    /// the client just left: a viewer closing a stream or a player seeking
    /// is how responses normally end, not worth a line.
    pub fn report(&self, what: &str) {
        if let Error::Failed(_) = self {
            eprintln!("{what}: {self}");
        }
    }
}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Closed => Error::Closed,
            StreamError::LastOperationFailed(e) => Error::Failed(e.to_debug_string()),
        }
    }
}

pub struct Body {
    stream: Option<OutputStream>,
    body: OutgoingBody,
    /// A response head not handed to the host yet (see [`Body::held`]).
    head: Option<(ResponseOutparam, OutgoingResponse)>,
}

impl Body {
    pub fn new(body: OutgoingBody) -> Result<Self, String> {
        let stream = body.write().map_err(|_| "response body stream taken twice".to_string())?;
        Ok(Body { stream: Some(stream), body, head: None })
    }

    /// A body whose response head goes to the host only when the body first
    /// has to wait, or ends: a short response then leaves in one write
    /// (head and body together) instead of two. Not for streams that wait
    /// for data outside this type: their head would wait too.
    pub fn held(body: OutgoingBody, out: ResponseOutparam, resp: OutgoingResponse) -> Result<Self, String> {
        let mut b = Body::new(body)?;
        b.head = Some((out, resp));
        Ok(b)
    }

    /// Whether nothing of the response has reached the host yet, so that
    /// ending the body unfinished still turns into an error response.
    pub fn head_held(&self) -> bool {
        self.head.is_some()
    }

    /// Hand a held head to the host.
    fn send_head(&mut self) {
        if let Some((out, resp)) = self.head.take() {
            out.set(resp);
        }
    }

    fn out(&self) -> &OutputStream {
        self.stream.as_ref().expect("stream open until finish")
    }

    /// Wait until the output accepts bytes.
    fn writable(&mut self) -> Result<u64, Error> {
        loop {
            let n = self.out().check_write()?;
            if n > 0 {
                return Ok(n);
            }
            // Full before the head was sent: nothing drains until it is.
            self.send_head();
            self.out().subscribe().block();
        }
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = self.writable()?.min(data.len() as u64) as usize;
            self.out().write(&data[..n])?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Move `len` bytes from `input` to the body by splice: for host-backed
    /// streams the bytes go from buffer to socket without entering the guest.
    pub fn splice_all(&mut self, input: &InputStream, mut len: u64) -> Result<(), Error> {
        while len > 0 {
            let n = self.writable()?.min(len);
            let moved = match self.out().splice(input, n) {
                Ok(m) => m,
                Err(StreamError::Closed) => return Err(Error::Failed(format!("source ended {len} bytes early"))),
                Err(e) => return Err(e.into()),
            };
            if moved == 0 {
                // The source has nothing yet; wait for it.
                input.subscribe().block();
            }
            len -= moved;
        }
        Ok(())
    }

    /// Splice up to `len` bytes from `input` while they fit in the body's
    /// buffer with the response head still held: never sends the head, so
    /// the caller may still turn the response into an error. Returns the
    /// number of bytes moved; fewer than `len` once the buffer is full.
    pub fn splice_held(&mut self, input: &InputStream, len: u64) -> Result<u64, Error> {
        let mut moved = 0;
        while moved < len && self.head_held() {
            let n = self.out().check_write()?.min(len - moved);
            if n == 0 {
                break;
            }
            match self.out().splice(input, n) {
                Ok(0) => input.subscribe().block(),
                Ok(m) => moved += m,
                Err(StreamError::Closed) => return Err(Error::Failed(format!("source ended {} bytes early", len - moved))),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(moved)
    }

    /// Ask the host to flush what has been written so far, without waiting:
    /// the stream then takes no more bytes until the flush has completed
    /// (see [`Body::wait_flushed`]). The host completes a flush only when
    /// its own queues are empty and the socket holds little unsent.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.send_head();
        self.out().flush()?;
        Ok(())
    }

    /// Wait for a flush asked for earlier, failing if the client goes, as a write
    /// does; returns whether there was anything to wait for. A stream that
    /// flushes after each item and, when this had to wait, picks the newest
    /// item again skips items on a slow link instead of queueing them; on a
    /// fast link the flush is long done and this costs one host call.
    pub fn wait_flushed(&mut self) -> Result<bool, Error> {
        if self.out().check_write()? > 0 {
            return Ok(false);
        }
        self.writable()?;
        Ok(true)
    }

    /// Fails once the client has gone away.
    pub fn check_open(&self) -> Result<(), Error> {
        self.out().check_write().map(|_| ()).map_err(Error::from)
    }

    /// Sleep until a monotonic instant, failing early if the client leaves.
    pub fn sleep_until(&self, instant: u64) -> Result<(), Error> {
        if monotonic_clock::now() < instant {
            monotonic_clock::subscribe_instant(instant).block();
        }
        self.check_open()
    }

    /// End a HEAD response: the head carries GET's Content-Length, so the
    /// body is left unwritten rather than finished short.
    pub fn end_head(mut self) {
        self.send_head();
        drop(self.stream.take());
    }

    pub fn finish(mut self) {
        self.send_head();
        drop(self.stream.take());
        if let Err(e) = OutgoingBody::finish(self.body, None) {
            eprintln!("finishing body: {e:?}");
        }
    }
}
