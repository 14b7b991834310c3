//! Builds the handler components in `components/` for wasm32-wasip2 and
//! puts them in OUT_DIR, where `src/components.rs` embeds them.

fn main() {
    let root = framewire_wasm_build::workspace_root();
    framewire_wasm_build::build(
        &root.join("components"),
        &["framewire_mjpeg", "framewire_files", "framewire_page"],
        &[&root.join("core"), &root.join("wit")],
    );
}
