//! Builds the misbehaving test components in `fixtures/` for wasm32-wasip2,
//! the examples in `examples/` as their READMEs say, and on Linux the fake
//! V4L2 camera in `fakecam/` (an LD_PRELOAD library; its path reaches the
//! tests as `env!("FRAMEWIRE_FAKECAM_SO")`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = framewire_wasm_build::workspace_root();
    let wit = root.join("wit");
    framewire_wasm_build::build(&root.join("tests/fixtures"), &["framewire_fixture_misbehave"], &[]);
    // examples: Rust
    framewire_wasm_build::build(&root.join("examples/thumbnail"), &["thumbnail"], &[&wit]);
    // examples: virtual camera and composition (see examples/virtual-camera):
    // the built-in MJPEG component (cargo has it cached from host/build.rs)
    // with the virtual camera plugged in, as OUT_DIR/mjpeg_plain.wasm.
    framewire_wasm_build::build(&root.join("examples/virtual-camera"), &["virtual_camera"], &[&wit, &root.join("core")]);
    framewire_wasm_build::build(&root.join("components"), &["framewire_mjpeg"], &[&wit, &root.join("core")]);
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    framewire_wasm_build::plug(
        &out_dir.join("framewire_mjpeg.wasm"),
        &[&out_dir.join("virtual_camera.wasm")],
        &out_dir.join("mjpeg_plain.wasm"),
    );
    // examples: Python
    componentize_py(&root, &wit, "examples/python-board", "app", "python_board.wasm");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let so = framewire_wasm_build::build_native_cdylib(&root.join("tests/fakecam"), "framewire_fakecam");
        println!("cargo:rustc-env=FRAMEWIRE_FAKECAM_SO={}", so.display());
    }
}

/// Build a Python handler with componentize-py, as its README says, into
/// OUT_DIR/`out`. The tool comes from the virtualenv `./dev setup` makes.
fn componentize_py(root: &Path, wit: &Path, dir: &str, module: &str, out: &str) {
    let dir = root.join(dir);
    // The sources only: the tool leaves a __pycache__ beside them.
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "py" || e == "txt") {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_PY");
    let tool = std::env::var_os("COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/python/bin/componentize-py"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join(out);
    let status = Command::new(&tool)
        .current_dir(&dir)
        .arg("-d")
        .arg(wit)
        .args(["-w", "framewire:camera/handler", "componentize", module, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): `./dev setup` installs it", tool.display()));
    assert!(status.success(), "componentize-py failed on {}", dir.display());
}
