//! Builds the misbehaving test components in `fixtures/` for wasm32-wasip2.

fn main() {
    let root = framewire_wasm_build::workspace_root();
    framewire_wasm_build::build(&root.join("tests/fixtures"), &["framewire_fixture_misbehave"], &[]);
}
