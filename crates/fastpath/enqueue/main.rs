//! f2b-notify-enqueue: the program Fail2Ban's action runs (config/action.d/f2b-notify.conf).
//!
//! On x86-64 Linux it is a static executable without libc, because Fail2Ban holds its global
//! action lock while the action runs and, on a virtual machine, glibc's start-up alone costs
//! more than spooling the event (see the f2b-notify-fastpath crate). It does the common case
//! and nothing else: `notify` in queue mode, for a jail whose route the plan already holds,
//! bound only for spooled sinks. Then it writes the spool entry (temp file, fsync, rename),
//! starts the delivery worker when none holds the spool, and exits 0.
//!
//! In every other case (no plan yet, a config file or variable changed, an argument it does
//! not know or that is wrong, a stdout sink, direct mode, a spool it cannot write, a panic)
//! it runs `f2b-notify` from its own directory with the same arguments, before anything was
//! spooled, so the event is handled exactly once, with the full binary's errors and
//! fallbacks. `F2B_NOTIFY_LOG=debug` makes it say on stderr which way it went and why.
//!
//! Elsewhere (other architectures) it is an ordinary program that only runs `f2b-notify`.
#![cfg_attr(enqueue_no_libc, no_std, no_main)]
// The whole point is system calls without libc; each `unsafe` is a system call, the entry
// point, or the allocator.
#![cfg_attr(enqueue_no_libc, allow(unsafe_code))]

#[cfg(not(enqueue_no_libc))]
fn main() {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("f2b-notify-enqueue"));
    let full = me.with_file_name("f2b-notify");
    let err = std::process::Command::new(&full).args(std::env::args_os().skip(1)).exec();
    eprintln!("f2b-notify: cannot run {}: {err}", full.display());
    std::process::exit(2);
}

#[cfg(enqueue_no_libc)]
mod sys;

#[cfg(enqueue_no_libc)]
mod fast {
    extern crate alloc;

    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt::Write;

    use alloc::ffi::CString;

    use f2b_notify_fastpath::layout::{c_path, entry_file_name};
    use f2b_notify_fastpath::{args, entry, plan, spool, trust, worker, Decision, Errno, Ident};
    use linux_raw_sys::general::stat;

    use crate::sys::{self, RawOs};

    /// What `run` found: done (exit 0), or hand over to `f2b-notify` and why.
    enum Next {
        Done,
        Full(&'static str),
    }

    /// The process's arguments and environment, as the kernel laid them out.
    pub struct Start {
        pub args: Vec<&'static [u8]>,
        pub envp: *const *const u8,
        pub env: Vec<&'static [u8]>,
    }

    /// Set once the event is in the spool: from then on, whatever happens, nothing may make
    /// `f2b-notify` handle the same event again.
    static mut SPOOLED: bool = false;
    /// The kernel's argv and envp, set before anything is allocated, so that even a process
    /// that ran out of memory can hand the event to `f2b-notify`.
    static mut RAW: (*mut *const u8, *const *const u8) = (core::ptr::null_mut(), core::ptr::null());

    /// Records the kernel's argv and envp; called first thing.
    pub fn set_raw(argv: *mut *const u8, envp: *const *const u8) {
        // SAFETY: one thread; written once, before anything reads it.
        unsafe { RAW = (argv, envp) };
    }

    pub fn main(start: &'static Start) -> ! {
        let debug = env(start, f2b_notify_fastpath::layout::LOG_ENV.as_bytes())
            .is_some_and(|v| v.starts_with(b"debug") || v.starts_with(b"trace"));
        match run(start, debug) {
            Next::Done => sys::exit(0),
            Next::Full(why) => {
                if debug {
                    say(&["f2b-notify-enqueue: running f2b-notify: ", why]);
                }
                full()
            }
        }
    }

    /// A panic (a bug, or out of memory: an allocation that fails ends here too) before the
    /// event is spooled hands it to `f2b-notify`, which does the whole job or fails loudly;
    /// after, the event is safe on disk and the exit is 0.
    pub fn on_panic() -> ! {
        // SAFETY: one thread.
        if unsafe { SPOOLED } {
            sys::exit(0)
        }
        full()
    }

    fn say(parts: &[&str]) {
        let mut line = String::new();
        for p in parts {
            line.push_str(p);
        }
        line.push('\n');
        let _ = sys::write_all(2, line.as_bytes());
    }

    fn env<'a>(start: &'a Start, name: &[u8]) -> Option<&'a [u8]> {
        start.env.iter().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")))
    }

    /// `f2b-notify` in the front end's own directory.
    fn full_path(start: &Start) -> CString {
        let mut buf = [0u8; 4096];
        let mut path = match sys::readlink(c"/proc/self/exe", &mut buf) {
            Ok(p) => p.to_vec(),
            Err(_) => start.args.first().map(|a| a.to_vec()).unwrap_or_default(),
        };
        let dir = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        path.truncate(dir);
        path.extend_from_slice(b"f2b-notify");
        // Neither a link's target nor argv[0] can hold a NUL byte.
        CString::new(path).unwrap_or_else(|_| CString::from(c"f2b-notify"))
    }

    /// Replaces this process with `f2b-notify` (beside this program) and the same arguments.
    /// Allocates nothing, so that it works when memory has run out; if it cannot, says so and
    /// exits 70, which Fail2Ban logs as a failed action.
    fn full() -> ! {
        // SAFETY: one thread; set by `set_raw` before anything else ran.
        let (argv, envp) = unsafe { RAW };
        let mut buf = [0u8; 4096];
        let name = b"f2b-notify\0";
        let dir = match sys::readlink(c"/proc/self/exe", &mut buf[..4096 - name.len()]) {
            Ok(p) => p.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1),
            Err(_) => 0,
        };
        buf[dir..dir + name.len()].copy_from_slice(name);
        let Ok(path) = core::ffi::CStr::from_bytes_until_nul(&buf) else { sys::exit(70) };
        if !argv.is_null() {
            // SAFETY: argv[0] exists (the kernel's argv holds at least the program) and the
            // array is this process's own to change; `path` lives until execve.
            unsafe { *argv = path.as_ptr().cast() };
            let err = sys::execve_raw(path, argv, envp);
            let _ = sys::write_all(2, b"f2b-notify: cannot run f2b-notify beside f2b-notify-enqueue: ");
            sys::write_errno(2, err);
        }
        sys::exit(70)
    }

    fn ident(st: &stat) -> Ident {
        Ident {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            ctime: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as i64,
        }
    }

    fn run(start: &Start, debug: bool) -> Next {
        let Some(inv) = args::parse(start.args.get(1..).unwrap_or(&[])) else {
            return Next::Full("arguments it does not handle");
        };
        let mut cwd_buf = [0u8; 4096];
        let Ok(cwd) = sys::getcwd(&mut cwd_buf) else { return Next::Full("no working directory") };
        let run_dir = env(start, plan::RUN_DIR_ENV.as_bytes())
            .filter(|v| !v.is_empty())
            .unwrap_or(plan::DEFAULT_RUN_DIR.as_bytes());
        let name = plan::file_name(cwd, &inv.configs);
        let os = RawOs { envp: start.envp };
        // A run directory others could change could hold a plan made to drop events.
        if trust::ancestors(&os, run_dir).is_err() || trust::dir(&os, run_dir) != Ok(true) {
            return Next::Full("the run directory is missing or not trusted");
        }
        let Some(plan) = c_path(&[run_dir, b"/", name.as_bytes()]).and_then(|p| plan::load(&os, &p)) else {
            return Next::Full("no plan for this config yet");
        };
        if plan.inputs != plan::inputs_hash(cwd, &inv.configs, start.env.iter().copied()) {
            return Next::Full("the F2B_NOTIFY_ variables changed");
        }
        match sys::stat(&full_path(start)) {
            Ok(st) if ident(&st) == plan.exe => {}
            _ => return Next::Full("f2b-notify changed"),
        }
        for (path, was) in &plan.paths {
            let Some(path) = c_path(&[path]) else { return Next::Full("a config path holds a NUL byte") };
            let now = match sys::stat(&path) {
                Ok(st) => Some(ident(&st)),
                Err(Errno::NOENT) => None,
                Err(_) => return Next::Full("a config path cannot be read"),
            };
            if now != *was {
                return Next::Full("the config changed");
            }
        }
        let sinks = match plan.decide(&inv.notify) {
            Decision::Quiet => return Next::Done,
            Decision::Full => return Next::Full("the route needs f2b-notify (new jail, or a stdout sink)"),
            Decision::Spool(sinks) => sinks,
        };
        let host = match &plan.host {
            Some(h) => h.clone(),
            None => host_name(),
        };
        let (secs, nanos) = sys::now();
        let enqueued_at = secs as f64 + f64::from(nanos) / 1e9;
        let json = entry::json(&inv.notify, sinks, &host, enqueued_at);
        let name = entry_file_name(u128::from(secs as u64) * 1_000_000_000 + u128::from(nanos), sys::getpid(), 0);
        if trust::spool(&os, &plan.spool) != Ok(true) {
            return Next::Full("the spool is missing or not trusted");
        }
        if spool::write(&os, &plan.spool, &name, json.as_bytes()).is_err() {
            return Next::Full("the spool cannot be written");
        }
        // SAFETY: one thread.
        unsafe { SPOOLED = true };
        if debug {
            say(&[
                "f2b-notify-enqueue: spooled ",
                inv.notify.kind.as_str(),
                " of jail ",
                &inv.notify.jail,
                " (fast path)",
            ]);
        }
        let exe = full_path(start);
        let worker_args: Vec<&[u8]> = plan.worker.iter().map(Vec::as_slice).collect();
        match worker::ensure(&os, &plan.spool, &exe, &worker_args) {
            Ok(worker::Started::LeftToService) if debug => {
                say(&["f2b-notify-enqueue: the spool is the service's (SPOOL/service): it delivers"]);
            }
            Ok(_) => {}
            Err(e) => {
                let mut msg = String::new();
                let _ = write!(msg, "event spooled, but the delivery worker could not be started: {e}");
                say(&["f2b-notify: ", &msg]);
            }
        }
        Next::Done
    }

    fn host_name() -> String {
        let name = sys::open_read(c"/proc/sys/kernel/hostname")
            .ok()
            .and_then(|fd| sys::read_all(&fd).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| String::from(s.trim()))
            .unwrap_or_default();
        if name.is_empty() {
            String::from("localhost")
        } else {
            name
        }
    }
}

#[cfg(enqueue_no_libc)]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fast::on_panic()
}

/// Called by `_start` (in sys.rs) with the initial stack: argc, argv..., NULL, envp..., NULL.
#[cfg(enqueue_no_libc)]
#[unsafe(no_mangle)]
unsafe extern "C" fn f2b_notify_enqueue_main(sp: *const usize) -> ! {
    extern crate alloc;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    // SAFETY: the kernel's initial stack layout.
    let start = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        fast::set_raw(argv.cast_mut(), envp);
        let args: Vec<&'static [u8]> = (0..argc).map(|i| sys::cstr(*argv.add(i))).collect();
        let mut env = Vec::new();
        let mut e = envp;
        while !(*e).is_null() {
            env.push(sys::cstr(*e));
            e = e.add(1);
        }
        fast::Start { args, envp, env }
    };
    fast::main(Box::leak(Box::new(start)))
}
