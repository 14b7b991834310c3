//! For build scripts: build helper cargo workspaces that live beside the
//! main one (their own Cargo.lock and target dir) and copy the results into
//! `OUT_DIR`: components for `wasm32-wasip2` ([`build`]) and native shared
//! libraries such as the tests' fake camera ([`build_native_cdylib`]); and
//! compose components, as `wac plug` does ([`plug`]).

mod compose;

pub use compose::plug;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build `workspace` (a folder with a Cargo.toml) in release mode and copy
/// `<name>.wasm` for each of `names` into OUT_DIR. `watch` are further
/// folders whose changes must trigger a rebuild (shared sources).
pub fn build(workspace: &Path, names: &[&str], watch: &[&Path]) {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    rerun_if_changed(workspace);
    for w in watch {
        rerun_if_changed(w);
    }
    let target_dir = helper_target_dir(workspace, "wasm");
    let mut cmd = nested_cargo(workspace, &target_dir);
    cmd.args(["--target", "wasm32-wasip2"]);
    let status = cmd.status().expect("cannot run cargo to build wasm components");
    if !status.success() {
        panic!(
            "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
            workspace.display()
        );
    }
    for name in names {
        let built = target_dir.join("wasm32-wasip2/release").join(format!("{name}.wasm"));
        std::fs::copy(&built, out_dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}

/// Build the cdylib `lib_name` of the native workspace `workspace` in release
/// mode for the target being built (`TARGET`), copy `lib<lib_name>.so` into
/// OUT_DIR and return that path.
pub fn build_native_cdylib(workspace: &Path, lib_name: &str) -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    rerun_if_changed(workspace);
    let target_dir = helper_target_dir(workspace, "native");
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let mut cmd = nested_cargo(workspace, &target_dir);
    cmd.args(["--target", &target]);
    let status = cmd.status().expect("cannot run cargo to build a native helper");
    assert!(status.success(), "building {} failed", workspace.display());
    let file = format!("lib{lib_name}.so");
    let built = target_dir.join(&target).join("release").join(&file);
    let copied = out_dir.join(&file);
    std::fs::copy(&built, &copied).unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    copied
}

/// A target dir of its own per helper workspace: the outer cargo holds a
/// lock on the main one.
fn helper_target_dir(workspace: &Path, kind: &str) -> PathBuf {
    let dir_name = workspace.file_name().map_or(kind.into(), |n| n.to_string_lossy().into_owned());
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join(format!("{kind}-{dir_name}"))
}

/// `cargo build --release --locked` of `workspace` into `target_dir`, with
/// the outer build's settings removed from the environment.
fn nested_cargo(workspace: &Path, target_dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // Settings meant for the outer build must not leak into the nested one.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The top of the framewire workspace (this crate's parent folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("wasm-build lives in the workspace").to_path_buf()
}

fn rerun_if_changed(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            rerun_if_changed(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
