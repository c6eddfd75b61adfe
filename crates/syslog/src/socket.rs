//! Sending datagrams to the system log's socket, and what each failure means for the router.
//!
//! A fresh socket is connected for every send: a system log that restarted has a new socket
//! at the same path, and a connection to the old one would only be refused. The socket is
//! non-blocking: a system log that does not read fills its queue, and a blocking send would
//! stall the worker's one thread (every other sink with it); instead the send is tried again
//! a little later, up to the sink's `timeout`, and then left to the router's retries.
//! (Connected, so that the kernel's queue-full answer refers to the system log's queue.)
//!
//! Classes: a socket that is not there (ENOENT) or that nobody reads (ECONNREFUSED), a full
//! queue and a lack of buffers are transient: the system log is restarting or busy. A
//! datagram the socket finds too long (EMSGSIZE) is cut and sent. What only a change of the
//! config or of the system can fix is permanent: a path that is not a socket, a stream socket
//! (EPROTOTYPE), no permission.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use f2b_notify_core::SinkError;
use rustix::io::Errno;
use tokio::time::Instant;

use crate::format::{Datagram, MAX_DATAGRAM, MIN_DATAGRAM};

/// The longest pause between two tries while the system log's queue is full.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// A socket connected to the system log.
pub(crate) struct Connection {
    socket: UnixDatagram,
    path: PathBuf,
    timeout: Duration,
}

impl Connection {
    /// Connects to `path`; a send waits at most `timeout` for a full queue.
    pub(crate) fn open(path: &Path, timeout: Duration) -> Result<Self, SinkError> {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.connect(path).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| classify(path, &e))?;
        Ok(Self::with(socket, path, timeout))
    }

    /// A connection over a socket already connected to `path` (the tests shrink its buffer).
    pub(crate) fn with(socket: UnixDatagram, path: &Path, timeout: Duration) -> Self {
        Self { socket, path: path.to_owned(), timeout }
    }

    /// Sends `datagram`, cut to what the socket takes when it says the datagram is too long
    /// (halved each time, down to the 480 bytes every receiver takes).
    pub(crate) async fn send(&self, datagram: &Datagram) -> Result<(), SinkError> {
        let mut bytes = datagram.bytes(MAX_DATAGRAM);
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let e = match self.socket.send(&bytes) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if is(&e, Errno::MSGSIZE) {
                if bytes.len() <= MIN_DATAGRAM {
                    return Err(SinkError::permanent(format!(
                        "the system log socket {} refuses even a {}-byte datagram: {e}",
                        self.path.display(),
                        bytes.len()
                    )));
                }
                bytes = datagram.bytes(bytes.len() / 2);
            } else if e.kind() == io::ErrorKind::WouldBlock || is(&e, Errno::NOBUFS) {
                let now = Instant::now();
                if now >= deadline {
                    return Err(SinkError::transient(format!(
                        "the system log at {} took nothing for {:.1} s: its queue is full",
                        self.path.display(),
                        self.timeout.as_secs_f64()
                    )));
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(MAX_PAUSE);
            } else {
                return Err(classify(&self.path, &e));
            }
        }
    }
}

fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// What a failure to connect or send means: worth a later try, or not without a fix.
pub(crate) fn classify(path: &Path, e: &io::Error) -> SinkError {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::NotFound => {
            SinkError::transient(format!("the system log socket {p} does not exist (is the system log running?)"))
        }
        // Linux answers a connect to a file that is not a socket this way too: that will not
        // change by itself.
        io::ErrorKind::ConnectionRefused if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket()) => {
            SinkError::permanent(format!("{p} is not a socket"))
        }
        io::ErrorKind::ConnectionRefused => SinkError::transient(format!("nothing reads the system log socket {p}")),
        io::ErrorKind::PermissionDenied => {
            SinkError::permanent(format!("no permission to write to the system log socket {p}: {e}"))
        }
        _ if is(e, Errno::PROTOTYPE) => SinkError::permanent(format!(
            "{p} is not a datagram socket (a stream socket?): this sink sends one datagram per event"
        )),
        _ if is(e, Errno::NOTDIR) || e.kind() == io::ErrorKind::InvalidInput => {
            SinkError::permanent(format!("cannot use {p} as the system log socket: {e}"))
        }
        _ => SinkError::transient(format!("cannot send to the system log socket {p}: {e}")),
    }
}
