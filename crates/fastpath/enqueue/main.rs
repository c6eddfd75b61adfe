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

    use f2b_notify_fastpath::{args, entry, plan, Decision, Ident, Plan};

    use crate::sys::{self, Errno};

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
        let debug = env(start, b"F2B_NOTIFY_LOG").is_some_and(|v| v.starts_with(b"debug") || v.starts_with(b"trace"));
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
        let (spooled, start, again) = unsafe { (SPOOLED, START, core::mem::replace(&mut *core::ptr::addr_of_mut!(PANICKED), true)) };
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
    fn full_path(start: &Start) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let mut path = match sys::readlink(b"/proc/self/exe\0", &mut buf) {
            Ok(p) => p.to_vec(),
            Err(_) => start.args.first().map(|a| a.to_vec()).unwrap_or_default(),
        };
        let dir = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        path.truncate(dir);
        path.extend_from_slice(b"f2b-notify");
        path
    }

    /// Replaces this process with `f2b-notify` and the same arguments.
    fn full(start: &Start) -> ! {
        let mut path = full_path(start);
        path.push(0);
        let mut argv: Vec<*const u8> = Vec::with_capacity(start.args.len() + 1);
        argv.push(path.as_ptr());
        for i in 1..start.args.len() {
            // SAFETY: the kernel's argv has args.len() entries.
            argv.push(unsafe { *start.argv.add(i) });
        }
        argv.push(core::ptr::null());
        let err = sys::execve(&path, &argv, start.envp);
        let mut msg = String::new();
        let _ = writeln!(msg, "f2b-notify: cannot run {}: {err}", String::from_utf8_lossy(&path[..path.len() - 1]));
        let _ = sys::write_all(2, msg.as_bytes());
        sys::exit(2)
    }

    fn ident(st: &sys::Stat) -> Ident {
        Ident { dev: st.dev, ino: st.ino, size: st.size as u64, mtime: st.mtime, mtime_nsec: st.mtime_nsec, ctime: st.ctime, ctime_nsec: st.ctime_nsec }
    }

    fn cpath(parts: &[&[u8]]) -> Vec<u8> {
        let mut p = Vec::new();
        for part in parts {
            p.extend_from_slice(part);
        }
        p.push(0);
        p
    }

    fn run(start: &Start, debug: bool) -> Next {
        let Some(inv) = args::parse(start.args.get(1..).unwrap_or(&[])) else {
            return Next::Full("arguments it does not handle");
        };
        let mut cwd_buf = [0u8; 4096];
        let Ok(cwd) = sys::getcwd(&mut cwd_buf) else { return Next::Full("no working directory") };
        let run_dir = env(start, plan::RUN_DIR_ENV.as_bytes()).filter(|v| !v.is_empty()).unwrap_or(plan::DEFAULT_RUN_DIR.as_bytes());
        let name = plan::file_name(cwd, &inv.configs);
        let Some(plan) = read_plan(&cpath(&[run_dir, b"/", name.as_bytes()])) else {
            return Next::Full("no plan for this config yet");
        };
        if plan.inputs != plan::inputs_hash(cwd, &inv.configs, start.env.iter().copied()) {
            return Next::Full("the F2B_NOTIFY_ variables changed");
        }
        match sys::stat(&cpath(&[&full_path(start)])) {
            Ok(st) if ident(&st) == plan.exe => {}
            _ => return Next::Full("f2b-notify changed"),
        }
        for (path, was) in &plan.paths {
            let now = match sys::stat(&cpath(&[path])) {
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
        let mut file = String::new();
        let _ = write!(file, "{:020}-{}-0.json", u128::from(secs as u64) * 1_000_000_000 + u128::from(nanos), sys::getpid());
        let tmp = cpath(&[&plan.spool, b"/tmp/", file.as_bytes()]);
        let new = cpath(&[&plan.spool, b"/new/", file.as_bytes()]);
        if let Err(why) = spool(&tmp, &new, json.as_bytes()) {
            let _ = sys::unlink(&tmp);
            return Next::Full(why);
        }
        // SAFETY: one thread.
        unsafe { SPOOLED = true };
        if debug {
            say(&["f2b-notify-enqueue: spooled ", inv.notify.kind.as_str(), " of jail ", &inv.notify.jail, " (fast path)"]);
        }
        if let Err(e) = ensure_worker(start, &plan) {
            let mut msg = String::new();
            let _ = write!(msg, "event spooled, but the delivery worker could not be started: {e}");
            say(&["f2b-notify: ", &msg]);
        }
        Next::Done
    }

    /// The plan, if it is one, is root's (or the caller's) own and no one else can write it.
    fn read_plan(path: &[u8]) -> Option<Plan> {
        let fd = sys::open(path, sys::O_RDONLY, 0).ok()?;
        let st = sys::fstat(fd).ok();
        let ok = st.is_some_and(|st| st.uid == sys::geteuid() && st.mode & 0o022 == 0 && st.size < 1 << 20);
        let text = if ok { sys::read_all(fd).ok() } else { None };
        sys::close(fd);
        Plan::parse(&text?)
    }

    fn host_name() -> String {
        let name = sys::open(b"/proc/sys/kernel/hostname\0", sys::O_RDONLY, 0)
            .ok()
            .and_then(|fd| {
                let r = sys::read_all(fd).ok();
                sys::close(fd);
                r
            })
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| String::from(s.trim()))
            .unwrap_or_default();
        if name.is_empty() {
            String::from("localhost")
        } else {
            name
        }
    }

    /// Temp file, fsync, rename: once this returns, no crash loses the event.
    fn spool(tmp: &[u8], new: &[u8], body: &[u8]) -> Result<(), &'static str> {
        let fd = sys::open(tmp, sys::O_WRONLY | sys::O_CREAT | sys::O_EXCL, 0o600).map_err(|_| "the spool cannot be written")?;
        let written = sys::write_all(fd, body).and_then(|()| sys::fsync(fd));
        sys::close(fd);
        written.map_err(|_| "the spool cannot be written")?;
        sys::rename(tmp, new).map_err(|_| "the spool cannot be written")
    }

    /// Starts `f2b-notify deliver` (as the plan says) unless a worker holds the spool's lock,
    /// the way the full binary does: stdin and stdout on /dev/null, stderr to worker.log, in
    /// `/`; the worker leaves the session itself.
    fn ensure_worker(start: &Start, plan: &Plan) -> Result<(), Errno> {
        let lock = sys::open(&cpath(&[&plan.spool, b"/worker.lock"]), sys::O_RDWR | sys::O_CREAT, 0o600)?;
        let free = sys::flock_try(lock);
        sys::close(lock);
        if !free? {
            return Ok(());
        }
        let log = sys::open(&cpath(&[&plan.spool, b"/worker.log"]), sys::O_WRONLY | sys::O_CREAT | sys::O_APPEND, 0o600)?;
        if sys::fstat(log).is_ok_and(|st| st.size > 1 << 20) {
            let _ = sys::ftruncate(log, 0);
        }
        let null = sys::open(b"/dev/null\0", sys::O_RDWR, 0)?;
        let mut path = full_path(start);
        path.push(0);
        let args: Vec<Vec<u8>> = plan.worker.iter().map(|a| cpath(&[a])).collect();
        let mut argv: Vec<*const u8> = Vec::with_capacity(args.len() + 2);
        argv.push(path.as_ptr());
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(core::ptr::null());
        if sys::fork()? == 0 {
            // The child: nothing here may return into the parent's code.
            let ok = sys::dup2(null, 0).and_then(|()| sys::dup2(null, 1)).and_then(|()| sys::dup2(log, 2)).and_then(|()| sys::chdir(b"/\0"));
            if ok.is_ok() {
                sys::execve(&path, &argv, start.envp);
            }
            sys::exit(127);
        }
        sys::close(log);
        sys::close(null);
        Ok(())
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
