//! Composing components: what `wac plug` does, as a library call for build
//! scripts, so a build needs no extra tool installed.

use std::path::Path;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// Plug the exports of each of `plugs` into the matching imports of
/// `socket` and write the composite to `out`: the equivalent of
/// `wac plug SOCKET --plug PLUG... -o OUT`. The composite exports what the
/// socket exports and imports what none of the plugs provides (the plugs'
/// own imports included). Panics, naming the files, if the composition
/// fails or no import matches: meant for build scripts.
pub fn plug(socket: &Path, plugs: &[&Path], out: &Path) {
    let bytes = compose(socket, plugs).unwrap_or_else(|e| {
        let plugs: Vec<_> = plugs.iter().map(|p| p.display().to_string()).collect();
        // The whole chain of causes: the outer error alone says little.
        let mut why = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            why += &format!(": {s}");
            source = s.source();
        }
        panic!("cannot plug {} into {}: {why}", plugs.join(", "), socket.display())
    });
    std::fs::write(out, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn compose(socket: &Path, plugs: &[&Path]) -> Result<Vec<u8>, Error> {
    let mut graph = CompositionGraph::new();
    let package = Package::from_file("framewire:socket", None, socket, graph.types_mut())?;
    let socket = graph.register_package(package)?;
    let mut ids = Vec::new();
    for (i, path) in plugs.iter().enumerate() {
        let package = Package::from_file(&format!("framewire:plug{i}"), None, path, graph.types_mut())?;
        ids.push(graph.register_package(package)?);
    }
    wac_graph::plug(&mut graph, ids, socket)?;
    // Validated as it is encoded: a bad composite fails the build, not a
    // test run.
    Ok(graph.encode(EncodeOptions::default())?)
}
