//! Replacing a route's component while it serves: compile off the request
//! path, check, smoke-instantiate, then swap atomically. Requests already
//! running keep the version they started on (they hold an `Arc` of it);
//! the old version's code is freed when its last instance ends.

use crate::config::ComponentSource;
use crate::guest::ComponentInfo;
use crate::runtime::sha256_hex;
use crate::server::App;
use anyhow::{Context, Result, anyhow};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl App {
    /// Swap `bytes` in as route `route`'s component. On failure the current
    /// version keeps serving and the reason is kept for `/api/state`.
    pub async fn swap(self: &Arc<Self>, route: &str, bytes: Vec<u8>, source: String) -> Result<ComponentInfo> {
        let r = self.routes.get(route).ok_or_else(|| {
            let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
            anyhow!("no route named {route:?} (routes: {})", names.join(", "))
        })?;
        let result = self.try_swap(r, bytes, source).await;
        self.observers.metrics.swap(route, result.is_ok());
        *r.last_error.lock().unwrap() = result.as_ref().err().map(|e| format!("{e:#}"));
        self.runtime.host.set_components(self.routes.infos());
        match &result {
            Ok(()) => tracing::info!(route, sha256 = %r.current.load().sha256, "component swapped in"),
            Err(e) => tracing::warn!(route, "component refused: {e:#}"),
        }
        result.map(|()| r.info())
    }

    async fn try_swap(self: &Arc<Self>, r: &crate::routes::Route, bytes: Vec<u8>, source: String) -> Result<()> {
        let app = self.clone();
        // Compiling takes a while and is CPU-bound: keep it off the workers.
        let loaded = tokio::task::spawn_blocking(move || app.runtime.load(&source, &bytes))
            .await
            .context("compile task failed")??;
        self.runtime.smoke_test(&loaded, r.media.as_ref()).await?;
        let old = r.current.swap(Arc::new(loaded));
        *r.previous.lock().unwrap() = Some(old.sha256.clone());
        Ok(())
    }
}

/// How long a burst of file events must be quiet before the file is read:
/// editors and `cp` write in several steps.
const SETTLE: Duration = Duration::from_millis(100);

/// Watch every route served from a file and swap it in when its content
/// changes (written in place or renamed over). A `framewire swap` on such a
/// route stays until the file changes again. The watcher lives as long as
/// the returned value.
pub fn watch(app: &Arc<App>) -> Result<Option<notify::RecommendedWatcher>> {
    // Each watched file with what it held when last read.
    let mut files: HashMap<PathBuf, (String, String)> = HashMap::new();
    for r in app.routes.iter() {
        if let ComponentSource::File(path) = &r.source {
            let abs = std::path::absolute(path)?;
            files.insert(abs, (r.name.clone(), r.current.load().sha256.clone()));
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && may_change_content(&event.kind)
        {
            for p in event.paths {
                let _ = tx.send(p);
            }
        }
    })?;
    // Watch folders, not files: a rename over the file replaces its inode.
    let dirs: std::collections::HashSet<PathBuf> = files.keys().filter_map(|p| p.parent().map(PathBuf::from)).collect();
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive).with_context(|| format!("cannot watch {}", d.display()))?;
    }
    let app = app.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = vec![first];
            while let Ok(Some(p)) = tokio::time::timeout(SETTLE, rx.recv()).await {
                changed.push(p);
            }
            for (file, (route, seen)) in files.iter_mut().filter(|(f, _)| changed.contains(f)) {
                let Ok(bytes) = std::fs::read(file) else { continue }; // removed: keep serving
                let sha256 = sha256_hex(&bytes);
                if *seen == sha256 {
                    continue;
                }
                seen.clone_from(&sha256);
                let current = app.routes.get(route).map(|r| r.current.load().sha256.clone());
                if current.as_deref() != Some(&sha256) {
                    let _ = app.swap(route, bytes, file.display().to_string()).await;
                }
            }
        }
    });
    Ok(Some(watcher))
}

/// Opening or reading a file, or changing its times, leaves its content as
/// it was; reacting to opens would even re-trigger on the watcher's own
/// reads. A write ends with a close-for-write, which counts.
fn may_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    #[test]
    fn only_events_that_may_change_content_count() {
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Any,
        ] {
            assert!(may_change_content(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
        ] {
            assert!(!may_change_content(&kind), "{kind:?}");
        }
    }
}
