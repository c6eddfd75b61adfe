//! The few operating-system services the action contract needs, as a trait: the front end
//! implements it with raw system calls (no libc), `f2b-notify` with the standard library.
//! What is done with them (`spool::write`, `worker::ensure`) is written once, here, against
//! the trait, so both programs write the spool and start the worker the same way.

use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use linux_raw_sys::errno;

/// A failed system call's error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// No such file or directory.
    pub const NOENT: Errno = Errno(errno::ENOENT as i32);
    /// Interrupted; try again.
    pub const INTR: Errno = Errno(errno::EINTR as i32);
    /// Input/output error.
    pub const IO: Errno = Errno(errno::EIO as i32);
    /// Would block (a lock held elsewhere).
    pub const AGAIN: Errno = Errno(errno::EAGAIN as i32);
    /// Invalid argument (for example a path holding a NUL byte).
    pub const INVAL: Errno = Errno(errno::EINVAL as i32);
    /// Too many symbolic links: `O_NOFOLLOW` met one.
    pub const LOOP: Errno = Errno(errno::ELOOP as i32);
    /// Out of memory.
    pub const NOMEM: Errno = Errno(errno::ENOMEM as i32);
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The messages a person may see from the front end (f2b-notify prints the standard
        // library's own).
        let text = match self.0 as u32 {
            errno::EPERM => "operation not permitted",
            errno::ENOENT => "no such file or directory",
            errno::ENOMEM => "out of memory",
            errno::EACCES => "permission denied",
            errno::EMFILE => "too many open files",
            errno::ENOSPC => "no space left on device",
            errno::EROFS => "read-only file system",
            errno::ELOOP => "a symbolic link where none may be",
            _ => "",
        };
        if text.is_empty() {
            write!(f, "error {}", self.0)
        } else {
            write!(f, "{text} (error {})", self.0)
        }
    }
}

/// How `Os::open` opens a file. Every way is close-on-exec and refuses a symbolic link as
/// the last component; files it creates get mode 0600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create a new file for writing; fail if anything exists at the path.
    CreateNew,
    /// Read and write, created when missing (the worker's lock).
    Lock,
    /// Append, created when missing (the worker's log).
    Append,
    /// Read and write an existing file (`/dev/null`).
    ReadWrite,
    /// Read an existing file.
    Read,
}

/// What a file or directory is, as far as trusting it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `S_IFDIR` and friends: the file type bits of `st_mode`.
    pub kind: FileKind,
    /// The owner.
    pub uid: u32,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// The size in bytes.
    pub size: u64,
}

/// A file's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A symbolic link (only `lstat` says so).
    Symlink,
    /// A regular file.
    File,
    /// Anything else (device, socket, pipe).
    Other,
}

impl FileKind {
    /// The type of a `st_mode`.
    pub fn of_mode(mode: u32) -> FileKind {
        match mode & 0o170000 {
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o100000 => FileKind::File,
            _ => FileKind::Other,
        }
    }
}

/// The system services of the action contract.
pub trait Os {
    /// An open file, closed when dropped.
    type File;
    /// Opens `path`.
    fn open(&self, path: &CStr, how: Open) -> Result<Self::File, Errno>;
    /// Writes some of `buf`; how much.
    fn write(&self, file: &Self::File, buf: &[u8]) -> Result<usize, Errno>;
    /// Waits until the file's data is on disk.
    fn fsync(&self, file: &Self::File) -> Result<(), Errno>;
    /// What an open file is.
    fn fstat(&self, file: &Self::File) -> Result<Meta, Errno>;
    /// What `path` is, without following a symbolic link at its end (`lstat`).
    fn lstat(&self, path: &CStr) -> Result<Meta, Errno>;
    /// What `path` is, following symbolic links (`stat`).
    fn stat(&self, path: &CStr) -> Result<Meta, Errno>;
    /// The effective user id.
    fn euid(&self) -> u32;
    /// Reads the whole file.
    fn read_all(&self, file: &Self::File) -> Result<Vec<u8>, Errno>;
    /// Empties the file.
    fn truncate(&self, file: &Self::File) -> Result<(), Errno>;
    /// Takes an exclusive `flock` without waiting: `false` when another process holds it.
    fn try_lock(&self, file: &Self::File) -> Result<bool, Errno>;
    /// Renames `from` to `to`, replacing what is there.
    fn rename(&self, from: &CStr, to: &CStr) -> Result<(), Errno>;
    /// Removes a file.
    fn unlink(&self, path: &CStr) -> Result<(), Errno>;
    /// Starts `argv[0]` with `argv` (this process's environment), stdin and stdout on
    /// `null`, stderr on `log`, in `/`, and does not wait for it.
    fn spawn(&self, argv: &[&CStr], null: &Self::File, log: &Self::File) -> Result<(), Errno>;

    /// Writes all of `buf`.
    fn write_all(&self, file: &Self::File, mut buf: &[u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            match self.write(file, buf) {
                Ok(0) => return Err(Errno::IO),
                Ok(n) => buf = &buf[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
