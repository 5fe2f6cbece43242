//! Builds `libexecd_preload.so` (the escalation shim, `shim/execd_preload.c`)
//! with the system C compiler, and tells the crate where it is, so a plain
//! `cargo build` or `cargo test` has it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/execd_preload.c");
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=OUT_DIR is not set; the escalation shim is not built");
        return;
    };
    let library = out_dir.join("libexecd_preload.so");
    let compiler = cc::Build::new().get_compiler();
    let mut command: Command = compiler.to_command();
    command
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&library)
        .arg("shim/execd_preload.c")
        .arg("-ldl");
    match command.status() {
        Ok(status) if status.success() => {
            println!("cargo:rustc-env=EXECD_PRELOAD_BUILT={}", library.display());
        }
        Ok(status) => println!("cargo:warning=building the escalation shim failed: {status}"),
        Err(err) => {
            println!("cargo:warning=cannot run the C compiler for the escalation shim: {err}")
        }
    }
}
