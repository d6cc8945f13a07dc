//! Report files written safely: never through a symlink, never half-written. A report replaces
//! its path by a temporary file in the same directory, renamed over it ([`replace`]); the
//! GitHub step summary, a file the runner owns, is appended to without following a symlink
//! ([`append`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new temporary file next to `path` (created exclusively, so a symlink
/// planted at its name is not followed), flushes it, then renames it over `path`: a symlink at
/// `path` is replaced, not followed, and a reader never sees half a report.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(
            ".{}.{:x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let tmp = dir.join(tmp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Appends `bytes` to `path` (created if missing); a symlink at `path` is refused (`O_NOFOLLOW`).
pub fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_whole_files_and_never_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("junit.xml");
        replace(&report, b"one").unwrap();
        replace(&report, b"two").unwrap();
        assert_eq!(std::fs::read(&report).unwrap(), b"two");
        // A symlink at the path: replaced by the report, its target untouched.
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        let link = dir.path().join("link.xml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace(&link, b"report").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"report");
        // No temporary file is left behind, also after a failure.
        assert!(replace(&dir.path().join("missing/dir/x.xml"), b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn append_refuses_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("summary.md");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(append(&link, b"x").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let plain = dir.path().join("plain.md");
        append(&plain, b"a").unwrap();
        append(&plain, b"b").unwrap();
        assert_eq!(std::fs::read(&plain).unwrap(), b"ab");
    }
}
