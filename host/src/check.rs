//! `framewire check FILE.wasm`: what a swap would do with a component
//! (compile, link against what framewire provides, find the HTTP handler
//! export, instantiate once) without a running server, and what it found.

use crate::frames::Feeds;
use crate::runtime::{HostInfo, Options, Runtime};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// A component that passed, described.
#[derive(Debug)]
pub struct Report {
    pub sha256: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  sha256   {}", self.sha256)?;
        writeln!(f, "  imports  {}", self.imports.join("\n           "))?;
        writeln!(f, "  exports  {}", self.exports.join("\n           "))?;
        write!(f, "  instantiated once, as a swap does before it serves (no request handled)")
    }
}

/// Check the component in `path`; `media` is the folder the files route
/// would see (none: no folder).
pub async fn check(path: &Path, media: Option<&Path>) -> Result<Report> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))?;
    let host = HostInfo::new(Arc::new(Feeds::new(Vec::new())));
    // Room for components of many core instances (a componentize-py one has
    // about ten): the pool's totals are shared by every instance.
    let runtime = Runtime::with_options(host, Options { max_instances: 16, ..Options::default() })?;
    let source = path.display().to_string();
    let loaded = runtime.load(&source, &bytes)?;
    let read_timeout = std::time::Duration::from_secs(crate::config::DEFAULT_MEDIA_READ_TIMEOUT_S);
    let media = media.map(|m| crate::mediafs::MediaDir::open(m, read_timeout)).transpose()?;
    runtime.smoke_test(&loaded, media.as_ref()).await?;
    let component = loaded.pre.instance_pre().component();
    let ty = component.component_type();
    let engine = component.engine();
    Ok(Report {
        sha256: loaded.sha256.clone(),
        imports: ty.imports(engine).map(|(name, _)| name.to_string()).collect(),
        exports: ty.exports(engine).map(|(name, _)| name.to_string()).collect(),
    })
}
