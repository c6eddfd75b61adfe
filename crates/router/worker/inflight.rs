//! In-flight marks: which batch a sink was being sent when the worker died.
//!
//! The workspace builds with `panic = "abort"`, so a sink that panics takes the whole worker
//! down, and the next event starts a new worker that would send the same batch and die again,
//! over and over, repeating the other sinks' in-flight messages each time. To break that loop
//! the worker writes `SPOOL/inflight/NAME.json` before it hands a batch to sink NAME and
//! removes it once the outcome is recorded. A new worker holds the spool lock, so a mark it
//! finds was left by a worker that died with that batch in flight.
//!
//! ```text
//! {"version":1,"files":["…-123-0.json"],"crashes":0,"pid":4242,"since":1700000000.5}
//! ```
//!
//! `files` are names in `SPOOL/sinks/NAME/`; `crashes` is how many workers had already died
//! with this batch in flight when this send started (0 for a fresh batch, 1 for its retry).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spool::{self, now_epoch, Spool};

/// The mark of one sink's batch in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// Format version, for upgrades.
    pub version: u32,
    /// The batch's file names in the sink's queue directory.
    pub files: Vec<String>,
    /// How many workers died with this batch in flight before this send.
    pub crashes: u32,
    /// The worker that wrote the mark (for a person reading it).
    pub pid: u32,
    /// When the send started, epoch seconds (for a person reading it).
    pub since: f64,
}

impl Mark {
    /// The batch's files that are still in `sink`'s queue. Names that are not plain file
    /// names are ignored: a mark is data, never a path to follow.
    pub fn present_files(&self, spool: &Spool, sink: &str) -> Vec<PathBuf> {
        let dir = spool.sink_dir(sink);
        self.files
            .iter()
            .filter(|name| Path::new(name).file_name().is_some_and(|f| f == name.as_str()) && name.ends_with(".json"))
            .map(|name| dir.join(name))
            .filter(|p| p.exists())
            .collect()
    }
}

fn dir(spool: &Spool) -> PathBuf {
    spool.root().join("inflight")
}

fn path(spool: &Spool, sink: &str) -> PathBuf {
    dir(spool).join(format!("{sink}.json"))
}

/// Marks `files` as in flight to `sink`, durably: temp file, fsync, rename, so that the mark
/// outlives the worker's process however it ends.
pub fn write(spool: &Spool, sink: &str, files: &[PathBuf], crashes: u32) -> io::Result<()> {
    let mark = Mark {
        version: 1,
        files: files.iter().filter_map(|f| f.file_name()?.to_str().map(str::to_owned)).collect(),
        crashes,
        pid: std::process::id(),
        since: now_epoch(),
    };
    spool::mkdir(&dir(spool))?;
    spool::write_private(&path(spool, sink), &serde_json::to_vec(&mark).map_err(io::Error::other)?, true)
}

/// The mark left for `sink`, if any. `Err` says why an existing mark cannot be used.
pub fn read(spool: &Spool, sink: &str) -> Result<Option<Mark>, String> {
    let bytes = match spool::read_nofollow(&path(spool, sink)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let mark: Mark = serde_json::from_slice(&bytes).map_err(|e| format!("not an in-flight mark: {e}"))?;
    if mark.version != 1 {
        return Err(format!("unknown in-flight mark version {}", mark.version));
    }
    Ok(Some(mark))
}

/// Removes `sink`'s mark: its batch's outcome is recorded.
pub fn clear(spool: &Spool, sink: &str) -> io::Result<()> {
    match fs::remove_file(path(spool, sink)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_clear_and_only_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        assert_eq!(read(&spool, "hook"), Ok(None));
        let queue = spool.sink_dir("hook");
        fs::create_dir_all(&queue).unwrap();
        let here = queue.join("1-1-0.json");
        fs::write(&here, "{}").unwrap();
        write(&spool, "hook", &[here.clone(), queue.join("2-1-0.json")], 1).unwrap();
        let mut mark = read(&spool, "hook").unwrap().expect("a mark");
        assert_eq!(mark.files, ["1-1-0.json", "2-1-0.json"]);
        assert_eq!(mark.crashes, 1);
        assert_eq!(mark.present_files(&spool, "hook"), std::slice::from_ref(&here));
        mark.files = vec!["../../etc/passwd".into(), "/etc/passwd".into(), "1-1-0.json".into()];
        assert_eq!(mark.present_files(&spool, "hook"), [here]);
        clear(&spool, "hook").unwrap();
        assert_eq!(read(&spool, "hook"), Ok(None));
        clear(&spool, "hook").unwrap();
        fs::write(path(&spool, "hook"), "torn").unwrap();
        assert!(read(&spool, "hook").unwrap_err().contains("not an in-flight mark"));
    }
}
