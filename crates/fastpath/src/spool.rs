//! Writing one entry into the spool, the one way both programs do it: a new file in `tmp/`
//! (mode 0600; never an existing file, never through a symbolic link), the text, fsync,
//! rename into `new/`. Once `write` returns `Ok`, no crash loses the event; on any failure
//! the temp file is removed.

use crate::layout::{c_path, NEW, TMP};
use crate::os::{Errno, Open, Os};

/// Writes `text` as the entry `name` of the spool at `spool`. `Err(Errno::NOENT)` when the
/// spool's directories do not exist yet (the full binary creates them; the front end hands
/// over).
pub fn write<O: Os>(os: &O, spool: &[u8], name: &str, text: &[u8]) -> Result<(), Errno> {
    let tmp = c_path(&[spool, b"/", TMP.as_bytes(), b"/", name.as_bytes()]).ok_or(Errno::INVAL)?;
    let new = c_path(&[spool, b"/", NEW.as_bytes(), b"/", name.as_bytes()]).ok_or(Errno::INVAL)?;
    let file = os.open(&tmp, Open::CreateNew)?;
    let written = os.write_all(&file, text).and_then(|()| os.fsync(&file));
    drop(file);
    let result = written.and_then(|()| os.rename(&tmp, &new));
    if result.is_err() {
        let _ = os.unlink(&tmp);
    }
    result
}
