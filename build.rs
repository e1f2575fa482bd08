//! Tells the integration tests what the machine that builds them lets them
//! do, so that a test that cannot run there is ignored with its reason
//! (`cargo test -- --ignored` lists it) instead of passing without
//! checking anything:
//!
//! * `tests_as_root`: the build runs as root (tests that start a program
//!   as another user, or in namespaces of its own);
//! * `tests_with_unshare`: `unshare` (util-linux) is on the `PATH`;
//! * `tests_with_strace`: `strace` is on the `PATH` (tests that stop a
//!   program at a given system call).
//!
//! Tests are built and run by the same user on the same machine; the
//! library and the programs do not look at these.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tests_as_root)");
    println!("cargo::rustc-check-cfg=cfg(tests_with_unshare)");
    println!("cargo::rustc-check-cfg=cfg(tests_with_strace)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=USER");
    // `/proc/self` belongs to the effective user of the process reading it.
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        println!("cargo::rustc-cfg=tests_as_root");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (program, cfg) in [("unshare", "tests_with_unshare"), ("strace", "tests_with_strace")] {
        if std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program))) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}
