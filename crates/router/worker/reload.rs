//! Noticing that the config changed: the identity (device, inode, size, mtime, ctime) of every
//! file the config is read from, and for the default directory of `config.toml`, `conf.d`
//! and each file in it, the same identity the fast path's plan is checked by. A look costs a
//! few `stat`s, so the worker takes one before each look at the spool.
//!
//! An edit within the same tick of the file system's clock that keeps the size would not
//! change an identity: while any file is younger than [`SETTLED`] its bytes are compared at
//! every look too, until it has settled.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use f2b_notify_fastpath::Ident;

use crate::config::{self, Config, Sources};

/// How old every config file must be before its identity alone says it did not change.
const SETTLED: Duration = Duration::from_secs(2);

/// The config files of one worker and their identities when last read.
pub struct Reload {
    sources: Sources,
    seen: Vec<(PathBuf, Option<Ident>)>,
    settled: bool,
    /// The bytes of each file as last read, while they have not settled.
    bytes: Vec<Option<Vec<u8>>>,
}

impl Reload {
    /// Not read yet: the first [`Reload::load`] reads it.
    pub fn new(sources: Sources) -> Self {
        Self { sources, seen: Vec::new(), settled: false, bytes: Vec::new() }
    }

    /// Reads the config now, remembering its files' identities.
    pub fn load(&mut self) -> Result<Config, String> {
        self.stamp();
        self.bytes = self.read();
        config::load(&self.sources).map(|loaded| loaded.config)
    }

    /// The config read again when a file changed since the last read (or had not settled);
    /// `None` when nothing changed.
    pub fn changed(&mut self) -> Option<Result<Config, String>> {
        let was = std::mem::take(&mut self.seen);
        let was_settled = self.settled;
        self.stamp();
        if was == self.seen {
            if was_settled {
                return None;
            }
            // Young files: the same identity may hide an edit; the same bytes do not.
            let before = std::mem::take(&mut self.bytes);
            self.bytes = self.read();
            if before == self.bytes {
                return None;
            }
        } else {
            self.bytes = self.read();
        }
        Some(config::load(&self.sources).map(|loaded| loaded.config))
    }

    /// The files, for the log.
    pub fn describe(&self) -> String {
        let names: Vec<String> =
            self.seen.iter().filter(|(_, id)| id.is_some()).map(|(p, _)| p.display().to_string()).collect();
        if names.is_empty() {
            "no config file: the embedded default".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// The bytes of every watched file (`None` for a directory or a missing file).
    fn read(&self) -> Vec<Option<Vec<u8>>> {
        self.seen.iter().map(|(p, _)| std::fs::read(p).ok()).collect()
    }

    fn stamp(&mut self) {
        let now = SystemTime::now();
        let mut settled = true;
        self.seen = self
            .paths()
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                if let Some(m) = &meta {
                    let young =
                        m.modified().ok().and_then(|t| now.duration_since(t).ok()).is_none_or(|age| age < SETTLED);
                    settled &= !young;
                }
                let id = meta.as_ref().map(crate::plan::ident);
                (p, id)
            })
            .collect();
        self.settled = settled;
    }

    /// Every path whose change could change the config.
    fn paths(&self) -> Vec<PathBuf> {
        match &self.sources {
            Sources::Explicit(files) => files.clone(),
            Sources::Default(dir) => {
                let confd = dir.join("conf.d");
                let mut paths = vec![dir.join("config.toml"), confd.clone()];
                if let Ok(entries) = std::fs::read_dir(&confd) {
                    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    files.sort();
                    paths.extend(files);
                }
                paths
            }
        }
    }
}
