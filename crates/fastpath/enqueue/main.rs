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
    use f2b_notify_fastpath::{args, entry, plan, spool, worker, Decision, Errno, Ident, Plan};
    use linux_raw_sys::general::stat;

    use crate::sys::{self, RawOs};

    /// What `run` found: done (exit 0), or hand over to `f2b-notify` and why.
    enum Next {
        Done,
        Full(&'static str),
    }

    /// The process's arguments and environment, as the kernel laid them out.
    pub struct Start {
        pub argv: *const *const u8,
        pub args: Vec<&'static [u8]>,
        pub envp: *const *const u8,
        pub env: Vec<&'static [u8]>,
    }

    /// Set once the event is in the spool: from then on, whatever happens, nothing may make
    /// `f2b-notify` handle the same event again.
    static mut SPOOLED: bool = false;
    static mut START: Option<&'static Start> = None;

    pub fn main(start: &'static Start) -> ! {
        // SAFETY: one thread; written here once, read by the panic handler.
        unsafe { START = Some(start) };
        let debug = env(start, f2b_notify_fastpath::layout::LOG_ENV.as_bytes())
            .is_some_and(|v| v.starts_with(b"debug") || v.starts_with(b"trace"));
        match run(start, debug) {
            Next::Done => sys::exit(0),
            Next::Full(why) => {
                if debug {
                    say(&["f2b-notify-enqueue: running f2b-notify: ", why]);
                }
                full(start)
            }
        }
    }

    /// A panic is a bug here; the full binary can still do the job, unless the event is
    /// already spooled.
    pub fn on_panic() -> ! {
        static mut PANICKED: bool = false;
        // SAFETY: one thread.
        let (spooled, start, again) =
            unsafe { (SPOOLED, START, core::mem::replace(&mut *core::ptr::addr_of_mut!(PANICKED), true)) };
        if again {
            // Handing over panicked too (out of memory?): give up; Fail2Ban logs the failure.
            sys::exit(70);
        }
        match start {
            Some(start) if !spooled => full(start),
            _ => sys::exit(0),
        }
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

    /// Replaces this process with `f2b-notify` and the same arguments.
    fn full(start: &Start) -> ! {
        let path = full_path(start);
        let mut argv: Vec<*const u8> = Vec::with_capacity(start.args.len() + 1);
        argv.push(path.as_ptr().cast());
        for i in 1..start.args.len() {
            // SAFETY: the kernel's argv has args.len() entries.
            argv.push(unsafe { *start.argv.add(i) });
        }
        argv.push(core::ptr::null());
        let err = sys::execve(&path, &argv, start.envp);
        let mut msg = String::new();
        let _ = writeln!(msg, "f2b-notify: cannot run {}: {err}", String::from_utf8_lossy(path.to_bytes()));
        let _ = sys::write_all(2, msg.as_bytes());
        sys::exit(2)
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
        let Some(plan) = c_path(&[run_dir, b"/", name.as_bytes()]).and_then(|p| read_plan(&p)) else {
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
        let os = RawOs { envp: start.envp };
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
        if let Err(e) = worker::ensure(&os, &plan.spool, &exe, &worker_args) {
            let mut msg = String::new();
            let _ = write!(msg, "event spooled, but the delivery worker could not be started: {e}");
            say(&["f2b-notify: ", &msg]);
        }
        Next::Done
    }

    /// The plan, if it is one, is root's (or the caller's) own and no one else can write it.
    fn read_plan(path: &core::ffi::CStr) -> Option<Plan> {
        let fd = sys::open_read(path).ok()?;
        let st = sys::fstat(&fd).ok();
        let ok = st.is_some_and(|st| st.st_uid == sys::geteuid() && st.st_mode & 0o022 == 0 && st.st_size < 1 << 20);
        let text = if ok { sys::read_all(&fd).ok() } else { None };
        Plan::parse(&text?)
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
        let args: Vec<&'static [u8]> = (0..argc).map(|i| sys::cstr(*argv.add(i))).collect();
        let mut env = Vec::new();
        let mut e = envp;
        while !(*e).is_null() {
            env.push(sys::cstr(*e));
            e = e.add(1);
        }
        fast::Start { argv, args, envp, env }
    };
    fast::main(Box::leak(Box::new(start)))
}
