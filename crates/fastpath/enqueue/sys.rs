//! What libc would have given the front end, for x86-64 Linux only: the entry point, the
//! handful of system calls it makes (the action contract's `Os` and a few more), a bump
//! allocator, and the memory functions the compiler calls. Nothing else: every extra page
//! touched costs a fault in a short-lived process.
//!
//! System call numbers, `struct stat`, flags and error numbers come from `linux-raw-sys`
//! (generated from the kernel's headers); every path is a `&CStr`. Not rustix: its
//! `bitflags` dependency is built with `std` for the rest of the program (features are
//! unified across a build), and a program without libc cannot link std.

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::mem::MaybeUninit;

use f2b_notify_fastpath::{Errno, FileKind, Meta, Open, Os};
use linux_raw_sys::general as g;
use linux_raw_sys::general as nr;

// The kernel starts the process here with argc at the top of the stack; hand the stack
// pointer to Rust with the ABI's 16-byte alignment.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym crate::f2b_notify_enqueue_main,
);

type Result<T> = core::result::Result<T, Errno>;

/// One system call: number and up to six arguments, the x86-64 Linux way.
#[inline]
unsafe fn syscall(n: u32, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call and arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, in("r8") e, in("r9") f, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn check(ret: isize) -> Result<usize> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

macro_rules! sc {
    ($n:expr) => { sc!($n, 0, 0, 0, 0, 0, 0) };
    ($n:expr, $a:expr) => { sc!($n, $a, 0, 0, 0, 0, 0) };
    ($n:expr, $a:expr, $b:expr) => { sc!($n, $a, $b, 0, 0, 0, 0) };
    ($n:expr, $a:expr, $b:expr, $c:expr) => { sc!($n, $a, $b, $c, 0, 0, 0) };
    ($n:expr, $a:expr, $b:expr, $c:expr, $d:expr) => { sc!($n, $a, $b, $c, $d, 0, 0) };
    ($n:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr) => {
        {
            // SAFETY: each wrapper below passes C strings (`&CStr`) and pointers to live
            // buffers of the stated lengths.
            #[allow(unused_unsafe)]
            let ret = unsafe { syscall($n, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, $f as usize) };
            check(ret)
        }
    };
}

/// An open file descriptor, closed when dropped.
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = sc!(nr::__NR_close, self.0);
    }
}

/// The system services of the action contract, without libc. `envp` is the environment the
/// worker is started with (this process's own, as the kernel laid it out).
pub struct RawOs {
    pub envp: *const *const u8,
}

impl Os for RawOs {
    type File = Fd;

    fn open(&self, path: &CStr, how: Open) -> Result<Fd> {
        // Close-on-exec always: the worker gets only what `dup2` gives it.
        let base = g::O_CLOEXEC | g::O_NOFOLLOW;
        let flags = match how {
            Open::CreateNew => g::O_WRONLY | g::O_CREAT | g::O_EXCL,
            Open::Lock => g::O_RDWR | g::O_CREAT,
            Open::Append => g::O_WRONLY | g::O_CREAT | g::O_APPEND,
            Open::ReadWrite => g::O_RDWR,
            Open::Read => g::O_RDONLY,
        };
        sc!(nr::__NR_openat, g::AT_FDCWD as isize, path.as_ptr(), base | flags, 0o600).map(|fd| Fd(fd as i32))
    }

    fn write(&self, f: &Fd, buf: &[u8]) -> Result<usize> {
        sc!(nr::__NR_write, f.0, buf.as_ptr(), buf.len())
    }

    fn fsync(&self, f: &Fd) -> Result<()> {
        sc!(nr::__NR_fsync, f.0).map(drop)
    }

    fn fstat(&self, f: &Fd) -> Result<Meta> {
        fstat(f).map(|st| meta(&st))
    }

    fn lstat(&self, path: &CStr) -> Result<Meta> {
        stat_at(path, g::AT_SYMLINK_NOFOLLOW).map(|st| meta(&st))
    }

    fn stat(&self, path: &CStr) -> Result<Meta> {
        stat_at(path, 0).map(|st| meta(&st))
    }

    fn euid(&self) -> u32 {
        geteuid()
    }

    fn read_all(&self, f: &Fd) -> Result<Vec<u8>> {
        read_all(f)
    }

    fn truncate(&self, f: &Fd) -> Result<()> {
        sc!(nr::__NR_ftruncate, f.0, 0).map(drop)
    }

    fn try_lock(&self, f: &Fd) -> Result<bool> {
        match sc!(nr::__NR_flock, f.0, g::LOCK_EX | g::LOCK_NB) {
            Ok(_) => Ok(true),
            Err(Errno::AGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn rename(&self, from: &CStr, to: &CStr) -> Result<()> {
        sc!(nr::__NR_rename, from.as_ptr(), to.as_ptr()).map(drop)
    }

    fn unlink(&self, path: &CStr) -> Result<()> {
        sc!(nr::__NR_unlink, path.as_ptr()).map(drop)
    }

    fn spawn(&self, argv: &[&CStr], null: &Fd, log: &Fd) -> Result<()> {
        let program = *argv.first().ok_or(Errno::INVAL)?;
        let mut ptrs: Vec<*const u8> = argv.iter().map(|a| a.as_ptr().cast()).collect();
        ptrs.push(core::ptr::null());
        if fork()? == 0 {
            // The child: nothing here may return into the parent's code.
            let ok = dup2(null, 0).and_then(|()| dup2(null, 1)).and_then(|()| dup2(log, 2)).and_then(|()| chdir(c"/"));
            if ok.is_ok() {
                execve(program, &ptrs, self.envp);
            }
            exit(127);
        }
        Ok(())
    }
}

/// Opens a file to read (following links: `/proc/sys/kernel/hostname`).
pub fn open_read(path: &CStr) -> Result<Fd> {
    sc!(nr::__NR_openat, g::AT_FDCWD as isize, path.as_ptr(), g::O_RDONLY | g::O_CLOEXEC, 0).map(|fd| Fd(fd as i32))
}

pub fn read_all(f: &Fd) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let spare = out.capacity() - out.len();
        // SAFETY: the kernel writes at most `spare` bytes into the vector's spare capacity.
        let n = sc!(nr::__NR_read, f.0, unsafe { out.as_mut_ptr().add(out.len()) }, spare)?;
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: n bytes were written.
        unsafe { out.set_len(out.len() + n) };
    }
}

pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = sc!(nr::__NR_write, fd, buf.as_ptr(), buf.len())?;
        buf = &buf[n..];
    }
    Ok(())
}

fn meta(st: &g::stat) -> Meta {
    Meta { kind: FileKind::of_mode(st.st_mode), uid: st.st_uid, mode: st.st_mode & 0o7777, size: st.st_size as u64 }
}

pub fn stat(path: &CStr) -> Result<g::stat> {
    stat_at(path, 0)
}

fn stat_at(path: &CStr, flags: u32) -> Result<g::stat> {
    let mut st = MaybeUninit::<g::stat>::zeroed();
    sc!(nr::__NR_newfstatat, g::AT_FDCWD as isize, path.as_ptr(), st.as_mut_ptr(), flags)?;
    // SAFETY: the kernel filled it in (and it started zeroed).
    Ok(unsafe { st.assume_init() })
}

pub fn fstat(f: &Fd) -> Result<g::stat> {
    let mut st = MaybeUninit::<g::stat>::zeroed();
    sc!(nr::__NR_fstat, f.0, st.as_mut_ptr())?;
    // SAFETY: as in `stat`.
    Ok(unsafe { st.assume_init() })
}

pub fn getcwd(buf: &mut [u8]) -> Result<&[u8]> {
    let n = sc!(nr::__NR_getcwd, buf.as_mut_ptr(), buf.len())?;
    Ok(&buf[..n.saturating_sub(1)])
}

pub fn readlink<'a>(path: &CStr, buf: &'a mut [u8]) -> Result<&'a [u8]> {
    let n = sc!(nr::__NR_readlink, path.as_ptr(), buf.as_mut_ptr(), buf.len())?;
    Ok(&buf[..n])
}

fn chdir(path: &CStr) -> Result<()> {
    sc!(nr::__NR_chdir, path.as_ptr()).map(drop)
}

fn dup2(from: &Fd, to: i32) -> Result<()> {
    sc!(nr::__NR_dup2, from.0, to).map(drop)
}

pub fn getpid() -> u32 {
    sc!(nr::__NR_getpid).unwrap_or(0) as u32
}

pub fn geteuid() -> u32 {
    sc!(nr::__NR_geteuid).unwrap_or(u32::MAX as usize) as u32
}

/// `Ok(0)` in the child, the child's PID in the parent.
fn fork() -> Result<usize> {
    sc!(nr::__NR_fork)
}

/// Only returns on failure. `argv` is a NULL-terminated array of C strings, as is `envp`.
pub fn execve(path: &CStr, argv: &[*const u8], envp: *const *const u8) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) {
        return Errno::INVAL;
    }
    match sc!(nr::__NR_execve, path.as_ptr(), argv.as_ptr(), envp) {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}

/// `execve` with the kernel's own NULL-terminated arrays; only returns on failure.
pub fn execve_raw(path: &CStr, argv: *const *const u8, envp: *const *const u8) -> Errno {
    match sc!(nr::__NR_execve, path.as_ptr(), argv, envp) {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}

/// Writes "error N" and a newline, without allocating.
pub fn write_errno(fd: i32, e: Errno) {
    let mut digits = [0u8; 24];
    let mut i = digits.len() - 1;
    digits[i] = b'\n';
    let mut n = e.0.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let _ = write_all(fd, b"error ");
    let _ = write_all(fd, &digits[i..]);
}

pub fn exit(code: i32) -> ! {
    loop {
        let _ = sc!(nr::__NR_exit_group, code);
    }
}

/// The wall clock: seconds and nanoseconds since the epoch.
pub fn now() -> (i64, u32) {
    let mut ts = MaybeUninit::<g::__kernel_timespec>::zeroed();
    let _ = sc!(nr::__NR_clock_gettime, g::CLOCK_REALTIME, ts.as_mut_ptr());
    // SAFETY: zeroed, then filled in by the kernel.
    let ts = unsafe { ts.assume_init() };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// The bytes of a C string, without its NUL.
///
/// # Safety
/// `p` points to a NUL-terminated string that lives as long as the process.
pub unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: as the caller promises. A volatile read keeps the compiler from turning the
    // loop into a call to `strlen`, which this program does not have.
    unsafe {
        while core::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

/// Memory handed out front to back and never given back: the process lives for a
/// millisecond. It comes from the kernel in chunks of `CHUNK` (or one larger block), reserved
/// without swap accounting and only backed when touched, so a tight `ulimit -v` is met by a
/// failed allocation, which hands the event to `f2b-notify`, not by a failure to start.
struct Bump {
    next: UnsafeCell<usize>,
    end: UnsafeCell<usize>,
}

// SAFETY: the program has one thread.
unsafe impl Sync for Bump {}

const CHUNK: usize = 1 << 20;

impl Bump {
    /// A new chunk for at least `size` bytes; `false` when the kernel refuses.
    ///
    /// # Safety
    /// One thread.
    unsafe fn grow(&self, size: usize) -> bool {
        let len = size.max(CHUNK).next_multiple_of(4096);
        let prot = g::PROT_READ | g::PROT_WRITE;
        let flags = g::MAP_PRIVATE | g::MAP_ANONYMOUS | g::MAP_NORESERVE;
        let Ok(base) = sc!(nr::__NR_mmap, 0, len, prot, flags, -1isize, 0) else { return false };
        // SAFETY: one thread, as the caller promises.
        unsafe {
            *self.next.get() = base;
            *self.end.get() = base + len;
        }
        true
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, so no one else touches the cells.
        unsafe {
            let fits = |next: usize| {
                let start = next.checked_add(layout.align() - 1)? & !(layout.align() - 1);
                let end = start.checked_add(layout.size())?;
                (end <= *self.end.get()).then_some((start, end))
            };
            let (start, end) = match fits(*self.next.get()) {
                Some(block) => block,
                None => {
                    let Some(need) = layout.size().checked_add(layout.align()) else { return core::ptr::null_mut() };
                    if !self.grow(need) {
                        return core::ptr::null_mut();
                    }
                    match fits(*self.next.get()) {
                        Some(block) => block,
                        None => return core::ptr::null_mut(),
                    }
                }
            };
            *self.next.get() = end;
            start as *mut u8
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: one thread; `ptr` came from `alloc` with `layout`.
        unsafe {
            // The last block grows in place when its chunk has room (a vector being filled
            // usually is the last).
            let end = (ptr as usize).checked_add(new_size);
            if ptr as usize + layout.size() == *self.next.get() && end.is_some_and(|e| e <= *self.end.get()) {
                *self.next.get() = ptr as usize + new_size;
                return ptr;
            }
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump { next: UnsafeCell::new(0), end: UnsafeCell::new(0) };

// The functions the compiler emits calls to; `rep movsb`/`rep stosb` are fast on every
// x86-64 of the last decade and cannot be turned back into calls to themselves.

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: copying forwards is safe when the destination starts first or apart.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: overlapping with the destination after the source: copy backwards.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's contract; volatile so that this stays a loop, not a call.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}

/// The precompiled `core` names the unwinder's personality routine; with panic = "abort"
/// nothing ever calls it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// The precompiled `alloc` keeps its unwinding landing pads, which end here; with
/// panic = "abort" no unwinding ever starts.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    exit(134)
}
