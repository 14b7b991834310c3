//! The route table: path prefixes to the component serving them.

use crate::components;
use crate::config::{ComponentSource, RouteConfig};
use crate::mediafs::MediaDir;
use crate::runtime::{Loaded, Runtime};
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use crate::guest::ComponentInfo;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

pub struct Route {
    pub name: String,
    /// `name`, shared with every response it serves (metrics, access log).
    pub label: std::sync::Arc<str>,
    pub paths: Vec<String>,
    pub source: ComponentSource,
    /// Folder preopened read-only as `/` for this route's instances.
    pub media: Option<MediaDir>,
    /// Swappable so a new version can take over without a restart.
    pub current: ArcSwap<Loaded>,
    /// SHA-256 of the version the current one replaced.
    pub previous: Mutex<Option<String>>,
    /// Why the last swap attempt was refused.
    pub last_error: Mutex<Option<String>>,
}

impl Route {
    pub fn info(&self) -> ComponentInfo {
        let mut info = self.current.load().info(&self.name);
        info.previous_sha256 = self.previous.lock().unwrap().clone();
        info.last_error = self.last_error.lock().unwrap().clone();
        info
    }
}

pub struct Routes {
    list: Vec<Route>,
}

/// Read a component's bytes from where the config says.
pub fn read_component(source: &ComponentSource) -> Result<Vec<u8>> {
    match source {
        ComponentSource::Builtin(name) => components::builtin(name)
            .map(<[u8]>::to_vec)
            .with_context(|| format!("no built-in component named {name:?}")),
        ComponentSource::File(path) => {
            std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))
        }
    }
}

impl Routes {
    pub fn load(runtime: &Runtime, configs: &[RouteConfig], media: Option<&Path>, read_timeout: Duration) -> Result<Routes> {
        let media = media.map(|m| MediaDir::open(m, read_timeout)).transpose()?;
        let mut list = Vec::new();
        for rc in configs {
            let bytes = read_component(&rc.component).with_context(|| format!("route {}", rc.name))?;
            let loaded = runtime
                .load(&rc.component.to_string(), &bytes)
                .with_context(|| format!("route {}", rc.name))?;
            tracing::info!(route = %rc.name, source = %loaded.source, sha256 = %loaded.sha256, "component loaded");
            list.push(Route {
                name: rc.name.clone(),
                label: rc.name.as_str().into(),
                paths: rc.paths.clone(),
                source: rc.component.clone(),
                media: if rc.media { media.clone() } else { None },
                current: ArcSwap::from_pointee(loaded),
                previous: Mutex::default(),
                last_error: Mutex::default(),
            });
        }
        let routes = Routes { list };
        runtime.host.set_components(routes.infos());
        Ok(routes)
    }

    /// The route most specifically covering `path`.
    pub fn find(&self, path: &str) -> Option<&Route> {
        let pairs: Vec<(&Route, &str)> =
            self.list.iter().flat_map(|r| r.paths.iter().map(move |p| (r, p.as_str()))).collect();
        framewire_core::routes::best_match(pairs.iter().map(|(_, p)| *p), path).map(|i| pairs[i].0)
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.list.iter().find(|r| r.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.list.iter()
    }

    pub fn infos(&self) -> Vec<ComponentInfo> {
        self.list.iter().map(Route::info).collect()
    }
}
