//! Running under systemd (`packaging/framewire.service`): the listening
//! socket it may pass (socket activation), readiness once serving, and
//! watchdog pings only while every camera is healthy, so that a wedged
//! capture gets the service restarted. Outside systemd all of it is a no-op.

use crate::frames::{Feeds, Status};
use anyhow::{Context, Result, bail};
use sd_notify::NotifyState;
use std::os::fd::{BorrowedFd, FromRawFd};
use std::sync::Arc;

/// The listening TCP socket systemd passed (`framewire.socket`), if any.
pub fn inherited_listener() -> Result<Option<std::net::TcpListener>> {
    let fds = sd_notify::listen_fds().context("socket activation (LISTEN_FDS)")?;
    let fds: Vec<_> = fds.collect();
    let fd = match fds.as_slice() {
        [] => return Ok(None),
        [fd] => *fd,
        _ => bail!("systemd passed {} sockets; framewire listens on one (one ListenStream=)", fds.len()),
    };
    // SAFETY: LISTEN_FDS hands this descriptor to this process (LISTEN_PID
    // was checked), and nothing else here owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let listening = rustix::net::sockopt::socket_acceptconn(borrowed).unwrap_or(false);
    let stream = rustix::net::sockopt::socket_type(borrowed).is_ok_and(|t| t == rustix::net::SocketType::STREAM);
    if !listening || !stream {
        bail!("the socket systemd passed (fd {fd}) is not a listening stream socket: use ListenStream=");
    }
    // SAFETY: as above; ownership moves to the listener.
    Ok(Some(unsafe { std::net::TcpListener::from_raw_fd(fd) }))
}

/// Tell systemd the service is up (Type=notify).
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// With `WatchdogSec=`, ping at half the period while every camera is
/// starting, live or idle; a camera failed or showing "no signal" stops
/// the pings, and systemd restarts the service once the period passes.
pub fn start_watchdog(feeds: Arc<Feeds>) {
    let Some(period) = sd_notify::watchdog_enabled() else { return };
    tokio::spawn(async move {
        let mut was_healthy = true;
        loop {
            tokio::time::sleep(period / 2).await;
            match unhealthy(&feeds) {
                None => {
                    notify(&[NotifyState::Watchdog]);
                    if !was_healthy {
                        notify(&[NotifyState::Status("serving")]);
                    }
                    was_healthy = true;
                }
                Some(why) if was_healthy => {
                    tracing::warn!("{why}: watchdog pings stop until it recovers");
                    notify(&[NotifyState::Status(&why)]);
                    was_healthy = false;
                }
                Some(_) => {}
            }
        }
    });
}

/// Why the cameras are not healthy, if they are not.
fn unhealthy(feeds: &Feeds) -> Option<String> {
    feeds.iter().find_map(|f| match f.stats.health() {
        (Status::Failed | Status::NoSignal, error) => {
            Some(format!("camera {} is failing: {}", f.name, error.as_deref().unwrap_or("no signal")))
        }
        _ => None,
    })
}
