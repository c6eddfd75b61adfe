//! The action's fast path, shared by the two binaries.
//!
//! Fail2Ban runs every action under one global lock, one process after another. On a virtual
//! machine most of what a process costs is the C library's start-up: glibc's runs dozens of
//! `cpuid` instructions, each a trap to the hypervisor (measured here: 0.56 ms for `/bin/true`,
//! 0.1 ms for a static program without libc). So the action runs `f2b-notify-enqueue`, a static
//! program without libc, which reads a *plan* and, when the plan covers the event, spools it
//! exactly as `f2b-notify notify` would. Otherwise it runs `f2b-notify` with the same
//! arguments, which does the whole job and writes or extends the plan for next time.
//!
//! A plan is a cache written by `f2b-notify` after it has loaded the config for a `notify` in
//! queue mode: the spool, the host name, how to start the worker, each jail's route as seen so
//! far, the identity (device, inode, size, times) of every config file and directory that was
//! read, the identity of the `f2b-notify` binary, and a hash of what selects and overrides the
//! config (working directory, `--config` values, `F2B_NOTIFY_…` variables). The front end uses
//! a plan only while all of that is unchanged.
//!
//! This crate holds what both sides must agree on: the plan's format, the hashes, the parsing
//! and checking of `notify`'s arguments, and the JSON of a spool entry. It has no dependencies
//! and uses only `core` and `alloc`, so the front end can link it without libc.
#![no_std]

extern crate alloc;

pub mod args;
pub mod entry;
mod hex;
pub mod plan;

pub use args::{Kind, Notify};
pub use plan::{Decision, Ident, JailRoute, Plan};
