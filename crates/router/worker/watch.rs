//! Wakes the worker when an event lands in `SPOOL/new/`, so that it can sleep until then
//! instead of looking at the spool 20 times a second.
//!
//! inotify through rustix (no C library, no extra crate) registered with tokio's reactor: the
//! worker only needs to know that something arrived, never what, so the events are read and
//! thrown away. Every writer of the spool (the front end, `notify`) writes a temp file and
//! renames it into `new/` (`IN_MOVED_TO`); `IN_CREATE` covers anything that creates a file there
//! directly. When inotify cannot be used (no instances left, `new/` replaced), the worker still
//! finds new events at its regular look at the directories' mtimes, only later.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;

/// A watch on one directory; never fires when it could not be set up.
pub struct NewEvents {
    fd: Option<AsyncFd<OwnedFd>>,
}

impl NewEvents {
    /// Watches `dir` for files created in it or moved into it.
    pub fn new(dir: &Path) -> Self {
        let watched = (|| -> std::io::Result<AsyncFd<OwnedFd>> {
            let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
            inotify::add_watch(&fd, dir, WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR)?;
            // `AsyncFd::new` is deprecated because a generic `T` may close or swap its file
            // descriptor behind tokio's back; an `OwnedFd` owns its descriptor for its whole
            // life, which is exactly what the replacement's safety contract asks. That
            // replacement is `unsafe`, which the workspace denies outside the front end.
            #[allow(deprecated)]
            AsyncFd::new(fd)
        })();
        match watched {
            Ok(fd) => Self { fd: Some(fd) },
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for new events ({e}); looking for them every {} ms instead",
                    dir.display(),
                    super::POLL.as_millis()
                );
                Self { fd: None }
            }
        }
    }

    /// Whether new events wake the worker (otherwise it must look for them often).
    pub fn active(&self) -> bool {
        self.fd.is_some()
    }

    /// Returns once something was created in or moved into the directory since the last call
    /// (at once when that happened meanwhile); never when there is no watch.
    pub async fn changed(&mut self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!("the watch on new events failed ({e}); looking for them at each regular look");
                self.fd = None;
                return std::future::pending().await;
            }
        };
        // Read (and drop) everything queued: one wake-up however many events came.
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(guard.get_inner(), &mut buf) {
                Ok(n) if n > 0 => {}
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    guard.clear_ready();
                    return;
                }
                // End of file or an error: nothing more to read now; the next regular look
                // finds whatever this missed.
                Ok(_) | Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_file_moved_into_the_directory_wakes_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        std::fs::create_dir(&new).unwrap();
        let mut watch = NewEvents::new(&new);
        assert!(watch.active());
        let quiet = tokio::time::timeout(Duration::from_millis(50), watch.changed()).await;
        assert!(quiet.is_err(), "woke with nothing new");
        for i in 0..3 {
            let tmp = dir.path().join(format!("{i}.tmp"));
            std::fs::write(&tmp, "{}").unwrap();
            std::fs::rename(&tmp, new.join(format!("{i}.json"))).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.expect("no wake-up");
        // The three renames were one wake-up.
        let again = tokio::time::timeout(Duration::from_millis(50), watch.changed()).await;
        assert!(again.is_err(), "woke twice for one batch");
    }

    #[tokio::test]
    async fn a_directory_that_cannot_be_watched_never_fires() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = NewEvents::new(&dir.path().join("missing"));
        assert!(!watch.active());
        assert!(tokio::time::timeout(Duration::from_millis(20), watch.changed()).await.is_err());
    }
}
