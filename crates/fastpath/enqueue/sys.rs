//! What libc would have given the front end, for x86-64 Linux only: the entry point, the
//! handful of system calls it makes, a bump allocator, and the memory functions the compiler
//! calls. Nothing else: every extra page touched costs a fault in a short-lived process.

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::fmt;

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

/// A failed system call's error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const NOENT: Errno = Errno(2);
    const AGAIN: Errno = Errno(11);
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0 {
            1 => "operation not permitted",
            2 => "no such file or directory",
            12 => "out of memory",
            13 => "permission denied",
            24 => "too many open files",
            28 => "no space left on device",
            30 => "read-only file system",
            _ => "",
        };
        if text.is_empty() {
            write!(f, "error {}", self.0)
        } else {
            write!(f, "{text} (error {})", self.0)
        }
    }
}

type Result<T> = core::result::Result<T, Errno>;

#[inline]
unsafe fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
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
            // SAFETY: each wrapper below passes pointers to live buffers of the stated lengths.
            #[allow(unused_unsafe)]
            let ret = unsafe { syscall($n, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, $f as usize) };
            check(ret)
        }
    };
}

const AT_FDCWD: isize = -100;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_APPEND: u32 = 0o2000;
const O_CLOEXEC: u32 = 0o2_000_000;

/// `struct stat` of x86-64 Linux.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    nlink: u64,
    pub mode: u32,
    pub uid: u32,
    gid: u32,
    pad: i32,
    rdev: u64,
    pub size: i64,
    blksize: i64,
    blocks: i64,
    atime: i64,
    atime_nsec: i64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    unused: [i64; 3],
}

/// Every path argument is NUL-terminated by the caller.
fn z(path: &[u8]) -> *const u8 {
    debug_assert_eq!(path.last(), Some(&0));
    path.as_ptr()
}

/// Opens `path` (close-on-exec always: the worker gets only what `dup2` gives it).
pub fn open(path: &[u8], flags: u32, mode: u32) -> Result<i32> {
    sc!(257, AT_FDCWD, z(path), flags | O_CLOEXEC, mode).map(|fd| fd as i32)
}

pub fn close(fd: i32) {
    let _ = sc!(3, fd);
}

pub fn read_all(fd: i32) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let spare = out.capacity() - out.len();
        // SAFETY: the kernel writes at most `spare` bytes into the vector's spare capacity.
        let n = sc!(0, fd, unsafe { out.as_mut_ptr().add(out.len()) }, spare)?;
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: n bytes were written.
        unsafe { out.set_len(out.len() + n) };
    }
}

pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = sc!(1, fd, buf.as_ptr(), buf.len())?;
        buf = &buf[n..];
    }
    Ok(())
}

pub fn fsync(fd: i32) -> Result<()> {
    sc!(74, fd).map(drop)
}

pub fn ftruncate(fd: i32, len: u64) -> Result<()> {
    sc!(77, fd, len).map(drop)
}

pub fn rename(from: &[u8], to: &[u8]) -> Result<()> {
    sc!(82, z(from), z(to)).map(drop)
}

pub fn unlink(path: &[u8]) -> Result<()> {
    sc!(87, z(path)).map(drop)
}

pub fn stat(path: &[u8]) -> Result<Stat> {
    let mut st = Stat::default();
    sc!(262, AT_FDCWD, z(path), &mut st as *mut Stat, 0).map(|_| st)
}

pub fn fstat(fd: i32) -> Result<Stat> {
    let mut st = Stat::default();
    sc!(5, fd, &mut st as *mut Stat).map(|_| st)
}

/// Takes the lock without waiting; `Ok(false)` when another process holds it.
pub fn flock_try(fd: i32) -> Result<bool> {
    const LOCK_EX: usize = 2;
    const LOCK_NB: usize = 4;
    match sc!(73, fd, LOCK_EX | LOCK_NB) {
        Ok(_) => Ok(true),
        Err(Errno::AGAIN) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn getcwd(buf: &mut [u8]) -> Result<&[u8]> {
    let n = sc!(79, buf.as_mut_ptr(), buf.len())?;
    Ok(&buf[..n.saturating_sub(1)])
}

pub fn readlink<'a>(path: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8]> {
    let n = sc!(89, z(path), buf.as_mut_ptr(), buf.len())?;
    Ok(&buf[..n])
}

pub fn chdir(path: &[u8]) -> Result<()> {
    sc!(80, z(path)).map(drop)
}

pub fn dup2(from: i32, to: i32) -> Result<()> {
    sc!(33, from, to).map(drop)
}

pub fn getpid() -> u32 {
    sc!(39).unwrap_or(0) as u32
}

pub fn geteuid() -> u32 {
    sc!(107).unwrap_or(u32::MAX as usize) as u32
}

/// `Ok(0)` in the child, the child's PID in the parent.
pub fn fork() -> Result<usize> {
    sc!(57)
}

/// Only returns on failure. `argv` and `envp` are NULL-terminated arrays of C strings.
pub fn execve(path: &[u8], argv: &[*const u8], envp: *const *const u8) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    match sc!(59, z(path), argv.as_ptr(), envp) {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}

pub fn exit(code: i32) -> ! {
    loop {
        let _ = sc!(231, code);
    }
}

/// The wall clock: seconds and nanoseconds since the epoch.
pub fn now() -> (i64, u32) {
    let mut ts = [0i64; 2];
    let _ = sc!(228, 0, ts.as_mut_ptr());
    (ts[0], ts[1] as u32)
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

/// One reservation of address space, handed out front to back and never given back: the
/// process lives for a millisecond. Pages are only backed when touched.
struct Bump {
    next: UnsafeCell<usize>,
    end: UnsafeCell<usize>,
}

// SAFETY: the program has one thread.
unsafe impl Sync for Bump {}

const RESERVE: usize = 256 << 20;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, so no one else touches the cells.
        unsafe {
            if *self.end.get() == 0 {
                const PROT_READ_WRITE: usize = 3;
                const MAP_PRIVATE_ANONYMOUS_NORESERVE: usize = 0x02 | 0x20 | 0x4000;
                let Ok(base) = sc!(9, 0, RESERVE, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS_NORESERVE, -1isize, 0) else {
                    return core::ptr::null_mut();
                };
                *self.next.get() = base;
                *self.end.get() = base + RESERVE;
            }
            let start = (*self.next.get() + layout.align() - 1) & !(layout.align() - 1);
            if start + layout.size() > *self.end.get() {
                return core::ptr::null_mut();
            }
            *self.next.get() = start + layout.size();
            start as *mut u8
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: one thread; `ptr` came from `alloc` with `layout`.
        unsafe {
            // The last block grows in place (a vector being filled usually is the last).
            if ptr as usize + layout.size() == *self.next.get() && ptr as usize + new_size <= *self.end.get() {
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
    unsafe { asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags)) };
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
    unsafe { asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags)) };
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
