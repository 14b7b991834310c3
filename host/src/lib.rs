//! framewire: cameras and media to the browser, every HTTP handler a
//! sandboxed wasm component.
//!
//! capture (`camera`) → encode once (`encode`) → publish (`frames`) →
//! components read frames through our WIT (`guest`) → HTTP (`server`).

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod camera;
pub mod check;
pub mod components;
pub mod config;
pub mod cors;
pub mod encode;
pub mod exchange;
pub mod mediafs;
pub mod metrics;
pub mod pacing;
pub mod frames;
pub mod guard;
pub mod guest;
pub mod relay;
pub mod record;
pub mod reply;
pub mod routes;
pub mod runtime;
pub mod secret;
pub mod streams;
pub mod server;
pub mod swap;
pub mod systemd;
pub mod tls;

pub use config::Config;
pub use server::Server;
