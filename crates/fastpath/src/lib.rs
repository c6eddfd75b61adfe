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
//! This crate is the action contract, the one implementation both programs use: what
//! `notify`'s arguments mean (`args`), the JSON of a spool entry (`entry`) and how it is
//! written (`spool`), the spool's names (`layout`), how the delivery worker is started
//! (`worker`), and the plan's format and hashes (`plan`). The system calls those need are a
//! trait (`os::Os`) that each program implements its own way. It uses only `core` and
//! `alloc` (and Linux's constants), so the front end can link it without libc.
#![no_std]

extern crate alloc;

pub mod args;
pub mod entry;
mod hex;
pub mod layout;
pub mod os;
pub mod plan;
pub mod spool;
pub mod trust;
pub mod worker;

pub use args::{ArgError, Kind, Notify};
pub use os::{Errno, FileKind, Meta, Open, Os};
pub use plan::{Decision, Ident, JailRoute, Plan};
