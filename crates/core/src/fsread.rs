//! Reading files someone else may have placed: the desired-state folder and the local
//! ledger. Only regular files are read (a FIFO, socket or device named `*.toml` or
//! `ledger.json` is refused instead of blocking or streaming forever), never more than a
//! cap, and a cycle of symbolic links is named as such. The errors carry no path: callers
//! put the path in front, where their own error type wants it.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Reads the regular file at `path` (following symbolic links), at most `cap` bytes.
///
/// - Not a regular file: `InvalidInput`, saying what it is instead.
/// - Larger than `cap`: `FileTooLarge`, with the cap.
/// - A cycle of symbolic links: `InvalidInput`, saying so.
/// - Missing: `NotFound`, unchanged, so callers can tell "absent" from "unreadable".
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, for ever.
    // Regular files ignore the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(name_loops)?;
    check_regular(&file)?;
    let size = file.metadata()?.len();
    if size > cap {
        return Err(too_large(size, cap));
    }
    // The file may grow after the check: read one byte past the cap to notice.
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(too_large(out.len() as u64, cap));
    }
    Ok(out)
}

/// What a path is, when it is not a regular file (`None` for a regular file), following
/// symbolic links. Errors are as [`read_regular`]'s.
pub fn not_regular(path: &Path) -> io::Result<Option<&'static str>> {
    let meta = std::fs::metadata(path).map_err(name_loops)?;
    Ok(describe(&meta.file_type()))
}

fn check_regular(file: &File) -> io::Result<()> {
    match describe(&file.metadata()?.file_type()) {
        None => Ok(()),
        Some(what) => Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{what}, not a regular file: refusing to read it"),
        )),
    }
}

fn describe(t: &std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a folder")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a file")
    }
}

fn too_large(size: u64, cap: u64) -> io::Error {
    io::Error::new(
        ErrorKind::FileTooLarge,
        format!(
            "larger than the {} limit ({} bytes or more)",
            human(cap),
            size
        ),
    )
}

fn name_loops(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(
            ErrorKind::InvalidInput,
            "a cycle of symbolic links (or more than 40 in a row): refusing to follow it",
        )
    } else {
        e
    }
}

/// `8 MiB`, `512 KiB`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.toml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_regular(&fifo, 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn dev_zero_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_regular(&link, 1024).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(&f, vec![b'#'; 2048]).unwrap();
        assert_eq!(read_regular(&f, 2048).unwrap().len(), 2048);
        let e = read_regular(&f, 1024).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("1 KiB limit"), "{e}");
    }

    #[test]
    fn a_symlink_cycle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = read_regular(&a, 1024).unwrap_err();
        assert!(e.to_string().contains("cycle of symbolic links"), "{e}");
        assert!(not_regular(&a).unwrap_err().to_string().contains("cycle"));
    }
}
