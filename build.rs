//! Link flags for `f2b-notify-enqueue`: on x86-64 Linux it is a static executable with its
//! own entry point and no C library at all (crates/fastpath/enqueue/sys.rs), linked at a fixed
//! address so that the kernel maps it and jumps in, with no loader and no relocations.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(enqueue_no_libc)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        println!("cargo:rustc-cfg=enqueue_no_libc");
        for flag in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
            println!("cargo:rustc-link-arg-bin=f2b-notify-enqueue={flag}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
