//! Distrusting files, in a fixed order (docs/design.md §6 "File safety").
//!
//! Open the directory and `fstat` it, open the file relative to it with
//! `O_NOFOLLOW | O_NONBLOCK` (no symbolic link, no FIFO hang), `fstat` the
//! descriptor (type, owner, mode, size, link count), and only then read,
//! into a buffer that is wiped when dropped. Never check a path and then
//! open it. The device-file store and the settings loader both read through
//! here; this module neither locks nor writes.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use posix::fcntl::{open, openat, OFlag};
use posix::stat::{fstat, kind, FileStat, Mode, SFlag};
use posix::Errno;
use zeroize::Zeroizing;

use crate::device::MAX_FILE_SIZE;
use crate::error::{Error, Result};

/// Flags for every read-only open of a file we do not trust.
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// A directory that holds a device file, opened and checked: owned by root
/// or by `owner`, and not writable by others unless sticky.
pub(crate) struct Dir {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dir({})", self.path.display())
    }
}

impl Dir {
    /// `Ok(None)`: the directory does not exist.
    pub(crate) fn open(dir: &Path, owner: u32) -> Result<Option<Dir>> {
        let fd = match open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::io(dir, "open directory", e.into())),
        };
        let st = fstat(&fd).map_err(|e| Error::io(dir, "stat directory", e.into()))?;
        if st.st_uid != 0 && st.st_uid != owner {
            return Err(Error::insecure(
                dir,
                format!(
                    "directory is owned by uid {}, not by the user or root",
                    st.st_uid
                ),
            ));
        }
        if st.st_mode & 0o002 != 0 && st.st_mode & 0o1000 == 0 {
            return Err(Error::insecure(
                dir,
                "directory is writable by others and not sticky",
            ));
        }
        Ok(Some(Dir {
            fd,
            path: dir.to_owned(),
        }))
    }
}

/// Refuses anything but a regular file, naming what it is instead.
pub(crate) fn require_regular(path: &Path, st: &FileStat) -> Result<()> {
    let what = match kind(st) {
        SFlag::S_IFREG => return Ok(()),
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device node",
        _ => "of an unknown type",
    };
    Err(Error::insecure(
        path,
        format!("is {what}, not a regular file"),
    ))
}

/// The checks on an open device file: regular, owned by `owner` or root,
/// no group or other bits, one link, at most [`MAX_FILE_SIZE`].
pub(crate) fn check_private(path: &Path, st: &FileStat, owner: u32) -> Result<()> {
    require_regular(path, st)?;
    if st.st_uid != owner && st.st_uid != 0 {
        return Err(Error::insecure(
            path,
            format!("owned by uid {}, not by the user or root", st.st_uid),
        ));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(Error::insecure(
            path,
            format!(
                "mode {:04o} lets group or others in; run chmod 600",
                st.st_mode & 0o7777
            ),
        ));
    }
    if st.st_nlink > 1 {
        return Err(Error::insecure(path, "has more than one hard link"));
    }
    if st.st_size < 0 || st.st_size as u64 > MAX_FILE_SIZE {
        return Err(Error::insecure(
            path,
            format!("larger than {MAX_FILE_SIZE} bytes"),
        ));
    }
    Ok(())
}

/// How often [`open_private`] opens the name again after finding that the
/// inode it got was replaced meanwhile, before giving up as busy.
const STALE_RETRIES: u32 = 100;

/// Opens `name` in `dir` without following links and checks it with
/// [`check_private`]. `Ok(None)`: it does not exist. `path` is the full
/// path, for messages.
pub(crate) fn open_private(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    owner: u32,
) -> Result<Option<(File, FileStat)>> {
    open_private_with(dir, name, path, owner, READ_FLAGS)
}

/// [`open_private`] for reading and writing: a writer opens the file it
/// locks this way, because after it exchanges the file with the spare the
/// old inode is the next spare, which it then writes through the same
/// descriptor (a second descriptor could not share its lock).
pub(crate) fn open_private_rw(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    owner: u32,
) -> Result<Option<(File, FileStat)>> {
    let flags = READ_FLAGS.difference(OFlag::O_RDONLY).union(OFlag::O_RDWR);
    open_private_with(dir, name, path, owner, flags)
}

fn open_private_with(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    owner: u32,
    flags: OFlag,
) -> Result<Option<(File, FileStat)>> {
    for _ in 0..STALE_RETRIES {
        let fd = match openat(&dir.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(Error::insecure(path, "is a symbolic link")),
            // Only an open for writing gets this far with a directory.
            Err(Errno::EISDIR) => {
                return Err(Error::insecure(path, "is a directory, not a regular file"))
            }
            Err(e) => return Err(Error::io(path, "open", e.into())),
        };
        let st = fstat(&fd).map_err(|e| Error::io(path, "stat", e.into()))?;
        if st.st_nlink == 0 {
            // A writer renamed a new file over this one between our open and
            // fstat: the inode we hold has no name left. That is the normal
            // life of the file, not an insecure one; open the name again.
            continue;
        }
        check_private(path, &st, owner)?;
        return Ok(Some((File::from(fd), st)));
    }
    Err(Error::Busy {
        path: path.to_owned(),
    })
}

/// Reads the file whose `fstat` gave `st` into a buffer that is wiped when
/// dropped. The buffer is sized from `st` (which the caller has checked
/// against [`MAX_FILE_SIZE`]): it never grows, so no unwiped copy of a key
/// is left behind, and wiping it costs what the file is, not the cap. A file
/// that grew or shrank since the `fstat` is refused; the caller's next try
/// sees it whole.
pub(crate) fn read_exact_size(
    path: &Path,
    file: &mut File,
    st: &FileStat,
) -> Result<Zeroizing<Vec<u8>>> {
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > MAX_FILE_SIZE {
        return Err(Error::insecure(
            path,
            format!("larger than {MAX_FILE_SIZE} bytes"),
        ));
    }
    // One byte more than the size, to notice a file that grew.
    let mut buf = Zeroizing::new(Vec::with_capacity(size as usize + 1));
    Read::by_ref(file)
        .take(size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, "read", e))?;
    if buf.len() as u64 != size {
        return Err(Error::Busy {
            path: path.to_owned(),
        });
    }
    Ok(buf)
}

/// The bytes as UTF-8 text, or an error naming the file.
pub(crate) fn text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| Error::invalid(path, None, None, "not UTF-8 text"))
}

/// Opens `path` without following a last-component link or blocking on a
/// FIFO, and checks that it is a regular file. `Ok(None)`: it does not
/// exist.
fn open_regular(path: &Path) -> Result<Option<(File, FileStat)>> {
    let fd = match open(path, READ_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(Error::insecure(path, "is a symbolic link")),
        Err(e) => return Err(Error::io(path, "open", e.into())),
    };
    let st = fstat(fd.as_fd()).map_err(|e| Error::io(path, "stat", e.into()))?;
    require_regular(path, &st)?;
    Ok(Some((File::from(fd), st)))
}

/// Reads a regular file of at most [`MAX_FILE_SIZE`] bytes that holds a
/// secret (an import source) as text wiped when dropped: no symbolic link,
/// no FIFO, no device. `Ok(None)`: it does not exist. Whose identity reads
/// it is the caller's choice.
pub fn read_regular(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let Some((mut file, st)) = open_regular(path)? else {
        return Ok(None);
    };
    let bytes = read_exact_size(path, &mut file, &st)?;
    let text = text(path, &bytes)?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// Reads a settings file that root must own and only root may write.
/// `Ok(None)`: it does not exist.
pub fn read_trusted_config(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let Some((mut file, st)) = open_regular(path)? else {
        return Ok(None);
    };
    if st.st_uid != 0 {
        return Err(Error::insecure(
            path,
            format!("owned by uid {}, not root", st.st_uid),
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(Error::insecure(
            path,
            format!(
                "mode {:04o} lets others write it; run chmod 644",
                st.st_mode & 0o7777
            ),
        ));
    }
    let bytes = read_exact_size(path, &mut file, &st)?;
    let text = text(path, &bytes)?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}
