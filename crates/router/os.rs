//! The action contract's system services (`f2b_notify_fastpath::Os`) through the standard
//! library, for `f2b-notify`; the front end has its own, without libc.

use std::ffi::{CStr, OsStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};

use std::os::unix::fs::MetadataExt;

use f2b_notify_fastpath::{Errno, FileKind, Meta, Open, Os};

/// The standard library's files and processes.
pub struct StdOs;

fn errno(e: io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(Errno::IO.0))
}

fn meta(m: &std::fs::Metadata) -> Meta {
    Meta { kind: FileKind::of_mode(m.mode()), uid: m.uid(), mode: m.mode() & 0o7777, size: m.size() }
}

fn path(p: &CStr) -> &std::path::Path {
    std::path::Path::new(OsStr::from_bytes(p.to_bytes()))
}

impl Os for StdOs {
    type File = File;

    fn open(&self, p: &CStr, how: Open) -> Result<File, Errno> {
        let mut o = OpenOptions::new();
        match how {
            Open::CreateNew => o.write(true).create_new(true),
            Open::Lock => o.read(true).write(true).create(true).truncate(false),
            Open::Append => o.append(true).create(true),
            Open::ReadWrite => o.read(true).write(true),
            Open::Read => o.read(true),
        };
        // std opens with O_CLOEXEC already.
        o.mode(0o600).custom_flags(linux_raw_sys::general::O_NOFOLLOW as i32).open(path(p)).map_err(errno)
    }

    fn write(&self, mut file: &File, buf: &[u8]) -> Result<usize, Errno> {
        file.write(buf).map_err(errno)
    }

    fn fsync(&self, file: &File) -> Result<(), Errno> {
        file.sync_all().map_err(errno)
    }

    fn fstat(&self, file: &File) -> Result<Meta, Errno> {
        file.metadata().map(|m| meta(&m)).map_err(errno)
    }

    fn lstat(&self, p: &CStr) -> Result<Meta, Errno> {
        std::fs::symlink_metadata(path(p)).map(|m| meta(&m)).map_err(errno)
    }

    fn stat(&self, p: &CStr) -> Result<Meta, Errno> {
        std::fs::metadata(path(p)).map(|m| meta(&m)).map_err(errno)
    }

    fn euid(&self) -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn read_all(&self, mut file: &File) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        io::Read::read_to_end(&mut file, &mut out).map_err(errno)?;
        Ok(out)
    }

    fn truncate(&self, file: &File) -> Result<(), Errno> {
        file.set_len(0).map_err(errno)
    }

    fn try_lock(&self, file: &File) -> Result<bool, Errno> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(errno(e)),
        }
    }

    fn rename(&self, from: &CStr, to: &CStr) -> Result<(), Errno> {
        std::fs::rename(path(from), path(to)).map_err(errno)
    }

    fn unlink(&self, p: &CStr) -> Result<(), Errno> {
        std::fs::remove_file(path(p)).map_err(errno)
    }

    fn spawn(&self, argv: &[&CStr], null: &File, log: &File) -> Result<(), Errno> {
        let (program, args) = argv.split_first().ok_or(Errno::INVAL)?;
        let mut cmd = Command::new(OsStr::from_bytes(program.to_bytes()));
        cmd.args(args.iter().map(|a| OsStr::from_bytes(a.to_bytes())))
            .stdin(Stdio::from(null.try_clone().map_err(errno)?))
            .stdout(Stdio::from(null.try_clone().map_err(errno)?))
            .stderr(Stdio::from(log.try_clone().map_err(errno)?))
            .current_dir("/");
        cmd.spawn().map(drop).map_err(errno)
    }
}

/// Tells the service manager `state` (`READY=1`) on `$NOTIFY_SOCKET`, as `sd_notify(3)` does
/// (a path, or `@name` in the abstract namespace); does nothing when there is none.
pub fn notify_service_manager(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else { return };
    let sent = UnixDatagram::unbound().and_then(|sock| match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        }
        None => sock.send_to(state.as_bytes(), std::path::Path::new(&socket)),
    });
    if let Err(e) = sent {
        tracing::warn!("cannot tell the service manager {state} on {}: {e}", socket.to_string_lossy());
    }
}
