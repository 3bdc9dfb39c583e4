//! The device-file store (docs/design.md §6 "File safety", "Concurrency and
//! durability"): the first backend behind [`super::Store`].
//!
//! Files are opened and checked by [`crate::fsafe`]. A change is
//! lock → read → modify → lock the spare → write it in place → fsync →
//! exchange it with the file (`renameat2(RENAME_EXCHANGE)`) → fsync dir.
//! Every device file `NAME` has a spare `.NAME.spare`, made when the file
//! is first written: a login's write needs no new inode and no new block, so
//! a full file system cannot refuse it (issue 11, finding 8), and the old
//! inode becomes the next spare. The spare is written only under its own
//! exclusive lock and readers read under a shared lock, after checking that
//! the inode they locked is still the one at the name: nobody ever reads a
//! spare being written. The new inode is locked before it becomes visible,
//! so the exclusive lock passes from the old file to the new one without a
//! gap, and a process that waited on the old inode notices and starts over.
//!
//! Every write a login makes is padded to one width that depends only on
//! the devices (names, keys, parameters), never on their state: a success
//! and a failure have the same size, and the spare, once that size, never
//! needs a block.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use posix::fcntl::{
    open, openat, readlinkat, renameat, renameat2, AtFlags, Flock, FlockArg, OFlag, RenameFlags,
};
use posix::stat::{fstat, fstatat, kind, mkdirat, stat, FileStat, Mode, SFlag};
use posix::unistd::{fsync, getpid, gettid, unlinkat, UnlinkatFlags};
use posix::Errno;
use zeroize::Zeroizing;

use crate::config::PathTemplate;
use crate::device::{DeviceFile, MAX_FILE_SIZE};
use crate::error::{Error, Result};
use crate::fsafe::{self, Dir};
use crate::store::{Change, Snapshot};
use crate::time::Timestamp;
use crate::user::{ActAs, UserInfo};

/// How long a login waits for another process's lock before "busy".
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Whose file-system identity opens and writes the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// As the calling process (root in PAM): central mode.
    AsCaller,
    /// With the file-system uid/gid switched to the user: files in homes.
    AsUser {
        /// The user's uid.
        uid: u32,
        /// The user's primary gid.
        gid: u32,
    },
}

impl Access {
    /// The rule for every file pam-totp touches on a user's behalf: as the
    /// user when the file's directory is the user's territory, so that root
    /// never follows the user's links with root's rights and what it
    /// creates is the user's; anywhere else, as the caller.
    ///
    /// The user's territory is decided by ownership, not by spelling
    /// (issue 11, finding 6): the directory path is walked from `/` one
    /// component at a time without following links; as soon as a component
    /// (a directory or a link) belongs to the user, or a link belongs to
    /// anyone but root, the user's identity is used. Links root made are
    /// followed (`/home` → `/var/home`). The textual rule (a path inside
    /// the passwd home) still applies too. Root's own files (uid 0) are
    /// always the caller's.
    pub fn for_path(path: &Path, user: &UserInfo) -> Access {
        if user.uid == 0 {
            return Access::AsCaller;
        }
        let as_user = Access::AsUser {
            uid: user.uid,
            gid: user.gid,
        };
        let has_home = user.home != Path::new("/") && user.home.is_absolute();
        if has_home && path.starts_with(&user.home) {
            return as_user;
        }
        match path.parent() {
            Some(dir) if dir.is_absolute() && passes_through_user(dir, user.uid) => as_user,
            _ => Access::AsCaller,
        }
    }
}

/// Most links followed while walking one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Whether walking `dir` from `/` (as the caller, never following a link
/// root did not make) meets a component owned by `uid`, or a link owned by
/// anyone but root. A component that does not exist ends the walk: nothing
/// of the user's was on the way. An error other than that answers `true`,
/// the side that gives less power.
fn passes_through_user(dir: &Path, uid: u32) -> bool {
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front_components(&mut todo, dir);
    let Ok(mut at) = open_path(None, OsStr::new("/")) else {
        return true;
    };
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let st = match fstatat(&at, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return false,
            Err(_) => return true,
        };
        if st.st_uid == uid {
            return true;
        }
        match kind(&st) {
            SFlag::S_IFLNK => {
                links += 1;
                if st.st_uid != 0 || links > MAX_LINKS {
                    return true;
                }
                let Ok(target) = readlinkat(&at, name.as_os_str()) else {
                    return true;
                };
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    let Ok(root) = open_path(None, OsStr::new("/")) else {
                        return true;
                    };
                    at = root;
                }
                push_front_components(&mut todo, &target);
            }
            SFlag::S_IFDIR => {
                let Ok(next) = open_path(Some(&at), &name) else {
                    return true;
                };
                // The inode we hold, not the name we looked at.
                match fstat(&next) {
                    Ok(st) if st.st_uid == uid => return true,
                    Ok(_) => at = next,
                    Err(_) => return true,
                }
            }
            // Not a directory: opening the file below it will fail anyway.
            _ => return false,
        }
    }
    false
}

/// Puts the components of `path` (`..` kept, `.` and `/` dropped) in front
/// of `todo`, in order.
fn push_front_components(todo: &mut VecDeque<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    for p in parts.into_iter().rev() {
        todo.push_front(p);
    }
}

/// Opens a directory for walking only (`O_PATH`), never through a link.
fn open_path(at: Option<&OwnedFd>, name: &OsStr) -> posix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match at {
        Some(at) => openat(at, name, flags, Mode::empty()),
        None => open(name, flags, Mode::empty()),
    }
}

/// One device file: where it is, who may own it, how to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path of the device file.
    pub path: PathBuf,
    /// Besides root, the only uid allowed to own the file and its directory.
    pub owner: u32,
    /// Identity used for every file operation.
    pub access: Access,
    /// The user's home when the path lies in it (a template naming `~/` or
    /// `%h`): if the file's directory is missing, the home must exist for
    /// that to mean "no device"; a home that is missing (not mounted yet)
    /// is an error (issue 11, finding 9). `None`: no such condition.
    pub home: Option<PathBuf>,
}

impl FileSpec {
    /// The device file of `user` under `template`. A file inside the user's
    /// home is accessed as the user; anywhere else as the caller.
    ///
    /// A template that names the home (`~/`, `%h`) is refused for an account
    /// whose home is `/` or not absolute: every such account would share one
    /// root-owned file, so one user's codes would open another's login.
    pub fn for_user(template: &PathTemplate, user: &UserInfo) -> Result<FileSpec> {
        let homeless = user.home == Path::new("/") || !user.home.is_absolute();
        if template.uses_home() && homeless {
            return Err(Error::Usage(format!(
                "user {} has no home directory of its own ({}) to hold a per-user \
                 device file; use a central path such as /var/lib/pam_totp/%u.toml",
                user.name,
                user.home.display()
            )));
        }
        let path = template.expand(user);
        Ok(FileSpec {
            access: Access::for_path(&path, user),
            path,
            owner: user.uid,
            home: template.uses_home().then(|| user.home.clone()),
        })
    }

    /// With the file's directory missing: fine if there is no home to
    /// require, or the home is there; an error naming the home otherwise.
    /// Called with the file's identity in force.
    fn require_home(&self) -> Result<()> {
        let Some(home) = &self.home else {
            return Ok(());
        };
        match stat(home.as_path()) {
            Ok(st) if kind(&st) == SFlag::S_IFDIR => Ok(()),
            Ok(_) | Err(Errno::ENOENT | Errno::ENOTDIR) => Err(Error::io(
                home,
                "find the home directory (missing or not mounted)",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )),
            Err(e) => Err(Error::io(home, "find the home directory", e.into())),
        }
    }

    fn act(&self) -> Result<Option<ActAs>> {
        match self.access {
            Access::AsCaller => Ok(None),
            Access::AsUser { uid, gid } => ActAs::user(uid, gid).map(Some),
        }
    }

    fn parts(&self) -> Result<(&Path, OsString)> {
        match (self.path.parent(), self.path.file_name()) {
            (Some(dir), Some(name)) if self.path.is_absolute() => Ok((dir, name.to_owned())),
            _ => Err(Error::Usage(format!(
                "device file path `{}` must be an absolute file path",
                self.path.display()
            ))),
        }
    }

    /// The temp file a writer builds the new content in. A lock holder
    /// uses `.NAME.tmp`: the lock makes it the only writer, so whatever is
    /// there was left by a crash. A creator (no file, so no lock to hold)
    /// uses `.NAME.PID-TID.tmp`: concurrent creators must never share (and
    /// so unlink or rename) each other's temp file, and a file with this
    /// name can only be left over from a dead thread whose ids were reused.
    fn temp_name(&self, name: &OsString, locked: bool) -> OsString {
        let mut t = OsString::from(".");
        t.push(name);
        if !locked {
            t.push(format!(".{}-{}", getpid(), gettid()));
        }
        t.push(".tmp");
        t
    }
}

/// The spare of the device file `name`: `.NAME.spare`, beside it.
fn spare_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(".spare");
    t
}

/// A device file or spare, locked with `flock(2)`; dropping it closes the
/// file and so releases the lock (see [`Flock`]).
type Held = Flock<File>;

fn parse(spec: &FileSpec, bytes: &[u8]) -> Result<DeviceFile> {
    DeviceFile::parse(fsafe::text(&spec.path, bytes)?, &spec.path)
}

/// Reads and parses a device file (to decide whether to prompt), under a
/// shared lock taken only for the read, waiting at most [`LOCK_WAIT`].
/// `Ok(None)`: the file or its directory does not exist.
pub fn read(spec: &FileSpec) -> Result<Option<DeviceFile>> {
    Ok(read_identified(spec)?.map(|(devices, _)| devices))
}

/// The bytes of one read of a device file, wiped when dropped.
type Bytes = Zeroizing<Vec<u8>>;

/// `fstat` of a locked file: the size its content has while the lock is
/// held.
fn stat_held(spec: &FileSpec, file: &Held) -> Result<FileStat> {
    fstat(&**file).map_err(|e| Error::io(&spec.path, "stat", e.into()))
}

/// [`read`], with the bytes that were read.
fn read_identified(spec: &FileSpec) -> Result<Option<(DeviceFile, Bytes)>> {
    let (dir_path, name) = spec.parts()?;
    let _act = spec.act()?;
    let Some(dir) = Dir::open(dir_path, spec.owner)? else {
        spec.require_home()?;
        return Ok(None);
    };
    let deadline = Instant::now() + LOCK_WAIT;
    let Some(mut file) = open_locked(spec, &dir, &name, FlockArg::LockSharedNonblock, deadline)?
    else {
        return Ok(None);
    };
    let st = stat_held(spec, &file)?;
    let bytes = fsafe::read_exact_size(&spec.path, &mut file, &st)?;
    Ok(Some((parse(spec, &bytes)?, bytes)))
}

/// Opens `name` in `dir`, checks it, and locks it with `how` (a
/// non-blocking kind), retrying until `deadline`; then checks that the
/// locked inode is still the one at the name (a writer may have exchanged
/// it while we waited) and starts over if not. `Ok(None)`: no file.
fn open_locked(
    spec: &FileSpec,
    dir: &Dir,
    name: &OsStr,
    how: FlockArg,
    deadline: Instant,
) -> Result<Option<Held>> {
    let mut pause = Duration::from_millis(1);
    loop {
        let opened = match how {
            FlockArg::LockShared | FlockArg::LockSharedNonblock => {
                fsafe::open_private(dir, name, &spec.path, spec.owner)?
            }
            _ => fsafe::open_private_rw(dir, name, &spec.path, spec.owner)?,
        };
        let Some((file, st)) = opened else {
            return Ok(None);
        };
        match Held::lock(file, how) {
            Ok(locked) => match fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                    return Ok(Some(locked));
                }
                // Replaced meanwhile: start over, within the same wait.
                Ok(_) | Err(Errno::ENOENT) if Instant::now() < deadline => continue,
                Ok(_) | Err(Errno::ENOENT) => {
                    return Err(Error::Busy {
                        path: spec.path.clone(),
                    })
                }
                Err(e) => return Err(Error::io(&spec.path, "stat", e.into())),
            },
            Err((_, Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    return Err(Error::Busy {
                        path: spec.path.clone(),
                    });
                }
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err((_, e)) => return Err(Error::io(&spec.path, "lock", e.into())),
        }
    }
}

/// A device file held under an exclusive lock. Dropping it unlocks.
#[derive(Debug)]
pub struct Locked {
    spec: FileSpec,
    name: OsString,
    dir_fd: OwnedFd,
    dir_path: PathBuf,
    /// The locked file; `None` when there is no file yet.
    lock: Option<Held>,
    /// The spare, locked, once this transaction has opened it.
    spare: Option<Held>,
    devices: Option<DeviceFile>,
    /// An exchange was made and the directory not fsynced since
    /// ([`Locked::save_staged`]).
    dir_dirty: bool,
    // Declared last so that it is dropped last: every file operation above
    // happens as the user.
    _act: Option<ActAs>,
}

/// Takes the exclusive lock on the device file, waiting at most `wait`, and
/// reads it. A missing file is locked as "no file yet": [`Locked::save`]
/// then creates it without replacing anything created meanwhile.
pub fn lock(spec: &FileSpec, wait: Duration) -> Result<Locked> {
    let (dir_path, _) = spec.parts()?;
    lock_reusing(spec, wait, None)?.ok_or_else(|| {
        Error::io(
            dir_path,
            "open directory",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

/// [`lock`], with `Ok(None)` when the directory does not exist (an error
/// when the home it should be in is missing, see [`FileSpec::home`]); when
/// the locked file still holds exactly the bytes `known` was parsed from,
/// its devices are taken from there instead of reading and parsing the file
/// a second time.
fn lock_reusing(
    spec: &FileSpec,
    wait: Duration,
    known: Option<(DeviceFile, Bytes)>,
) -> Result<Option<Locked>> {
    let (dir_path, name) = spec.parts()?;
    let act = spec.act()?;
    let Some(dir) = Dir::open(dir_path, spec.owner)? else {
        spec.require_home()?;
        return Ok(None);
    };
    let deadline = Instant::now() + wait;
    let mut locked = open_locked(spec, &dir, &name, FlockArg::LockExclusiveNonblock, deadline)?;
    let devices = match locked.as_mut() {
        Some(l) => {
            // Always read again under the lock, and parse again unless the
            // bytes are exactly those `known` was parsed from. (Comparing
            // inode, size and times instead is not enough: a file system
            // that keeps coarse times lets two saves in one tick look the
            // same, and a code be accepted twice: red-team finding R1.)
            let st = stat_held(spec, l)?;
            let bytes = fsafe::read_exact_size(&spec.path, l, &st)?;
            match known {
                Some((devices, before)) if *before == *bytes => Some(devices),
                _ => Some(parse(spec, &bytes)?),
            }
        }
        None => None,
    };
    Ok(Some(Locked {
        spec: spec.clone(),
        name,
        dir_fd: dir.fd,
        dir_path: dir.path,
        lock: locked,
        spare: None,
        dir_dirty: false,
        devices,
        _act: act,
    }))
}

impl Locked {
    /// The devices as read under the lock; `None` when there is no file.
    pub fn devices(&self) -> Option<&DeviceFile> {
        self.devices.as_ref()
    }

    /// The file this lock is on.
    pub fn spec(&self) -> &FileSpec {
        &self.spec
    }

    /// Durably replaces the file with `devices` (header naming `user`), and
    /// keeps the lock on the new file. On error the old file is untouched.
    ///
    /// The text is padded to [`padded_len`], a width that depends only on
    /// the devices, not on their state: whatever a login decides, it writes
    /// the same number of bytes.
    pub fn save(&mut self, devices: &DeviceFile, user: &str) -> Result<()> {
        self.save_staged(devices, user)?;
        self.sync_dir()
    }

    /// [`Locked::save`] without the final fsync of the directory: the new
    /// content is on disk (written in place and fdatasynced before the
    /// exchange) and visible to every process at once, but which of the two
    /// inodes has the name after a crash is only settled by the next
    /// [`Locked::sync_dir`]. Nothing writes over the other inode before that
    /// (the next save or scrub syncs first), so a crash never shows a torn
    /// file.
    /// The login stores its failure this way before it compares the code:
    /// what makes it count is that every process sees it, and the final
    /// save of the same transaction makes it durable.
    pub fn save_staged(&mut self, devices: &DeviceFile, user: &str) -> Result<()> {
        let text = stored_text(devices, user);
        // A change of devices (not of state) leaves the old keys and the old
        // width in the spare: write the new text there too afterwards.
        // (A file just created has its spare written with it.)
        let scrub = match &self.devices {
            Some(old) => !same_devices(old, devices),
            None => false,
        };
        self.stage_bytes(text.as_bytes())?;
        self.devices = Some(devices.clone());
        if scrub {
            // The spare is the old file, which the directory on disk names
            // until the exchange is durable: sync first, or a crash during
            // the scrub would show a torn file (red-team finding R2-2).
            self.sync_dir()?;
            // Best effort: the file itself is saved; a spare that keeps its
            // old text is only overwritten at the next save.
            if let Some(spare) = self.spare.as_mut() {
                let _ = write_in_place(spare, text.as_bytes());
            }
        }
        Ok(())
    }

    /// Makes the last exchange durable: fsyncs the directory if a staged
    /// save left it unsynced.
    pub fn sync_dir(&mut self) -> Result<()> {
        if self.dir_dirty {
            fsync(&self.dir_fd)
                .map_err(|e| Error::io(&self.dir_path, "fsync directory", e.into()))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Durably replaces the file with `bytes` (already validated by the
    /// caller). On error the old file is untouched.
    pub fn replace_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.stage_bytes(bytes)?;
        self.sync_dir()
    }

    /// [`Locked::replace_bytes`] without the directory's fsync (see
    /// [`Locked::save_staged`]); creating a first file is always durable.
    fn stage_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if self.lock.is_none() {
            return self.create(bytes);
        }
        // After an unsynced exchange the spare is the inode the directory
        // on disk still names: make the exchange durable before writing
        // over it, or a crash during the write would show a torn file
        // (red-team finding R2-1).
        self.sync_dir()?;
        let spare_name = spare_name(&self.name);
        let spare_path = self.dir_path.join(&spare_name);
        if self.spare.is_none() {
            let deadline = Instant::now() + LOCK_WAIT;
            self.spare = Some(self.open_spare(&spare_name, &spare_path, deadline)?);
        }
        let Some(spare) = self.spare.as_mut() else {
            return Err(Error::io(
                &spare_path,
                "open",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        write_in_place(spare, bytes).map_err(|e| Error::io(&spare_path, "write", e))?;
        match renameat2(
            &self.dir_fd,
            spare_name.as_os_str(),
            &self.dir_fd,
            self.name.as_os_str(),
            RenameFlags::RENAME_EXCHANGE,
        ) {
            // The new file is the locked spare; the old inode is the next
            // spare, still locked by us until the end of the transaction.
            Ok(()) => std::mem::swap(&mut self.lock, &mut self.spare),
            // A file system without RENAME_EXCHANGE (NFS, some FUSE): the
            // spare is renamed over the file, as a temp file would be; the
            // old inode goes, and the next save makes a new spare.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                renameat(
                    &self.dir_fd,
                    spare_name.as_os_str(),
                    &self.dir_fd,
                    self.name.as_os_str(),
                )
                .map_err(|e| Error::io(&self.spec.path, "rename", e.into()))?;
                self.lock = self.spare.take();
            }
            Err(e) => {
                return Err(Error::io(
                    &self.spec.path,
                    "exchange with the spare",
                    e.into(),
                ))
            }
        }
        self.dir_dirty = true;
        Ok(())
    }

    /// Opens (or makes) the spare and locks it, waiting at most until
    /// `deadline` for readers that still hold it from when it was the file.
    /// Anything at that name that is not a private regular file of ours is
    /// removed and a new spare made.
    fn open_spare(&self, name: &OsStr, path: &Path, deadline: Instant) -> Result<Held> {
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let mut pause = Duration::from_millis(1);
        for _ in 0..2 {
            let fd = match openat(&self.dir_fd, name, flags | OFlag::O_NOCTTY, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    // The first spare of this file. A temp file of the
                    // writers before spares (`.NAME.tmp`, left by a crash)
                    // goes now: it may hold old keys.
                    let old_tmp = self.spec.temp_name(&self.name, true);
                    let _ = unlinkat(
                        &self.dir_fd,
                        old_tmp.as_os_str(),
                        UnlinkatFlags::NoRemoveDir,
                    );
                    openat(
                        &self.dir_fd,
                        name,
                        flags | OFlag::O_CREAT | OFlag::O_EXCL,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(|e| Error::io(path, "create", e.into()))?
                }
                Err(Errno::ELOOP) => {
                    self.remove(name, path)?;
                    continue;
                }
                Err(e) => return Err(Error::io(path, "open", e.into())),
            };
            let st = fstat(&fd).map_err(|e| Error::io(path, "stat", e.into()))?;
            let ours = st.st_uid == self.spec.owner || st.st_uid == 0;
            if kind(&st) != SFlag::S_IFREG || st.st_nlink != 1 || !ours || st.st_mode & 0o077 != 0 {
                drop(fd);
                self.remove(name, path)?;
                continue;
            }
            let mut file = File::from(fd);
            loop {
                match Held::lock(file, FlockArg::LockExclusiveNonblock) {
                    Ok(l) => return Ok(l),
                    Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                        file = f;
                        sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                    Err((_, Errno::EWOULDBLOCK)) => {
                        return Err(Error::Busy {
                            path: self.spec.path.clone(),
                        })
                    }
                    Err((_, e)) => return Err(Error::io(path, "lock", e.into())),
                }
            }
        }
        Err(Error::insecure(path, "keeps being replaced; refused"))
    }

    fn remove(&self, name: &OsStr, path: &Path) -> Result<()> {
        match unlinkat(&self.dir_fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::io(path, "remove", e.into())),
        }
    }

    /// Creates the first file (there was none when we looked): a temp file,
    /// fsynced, locked, renamed into place without replacing one another
    /// process created meanwhile; then, best effort, its spare.
    fn create(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.spec.temp_name(&self.name, false);
        let tmp_path = self.dir_path.join(&tmp);
        let create = || {
            openat(
                &self.dir_fd,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match create() {
            // Nobody else writes this temp name (see `temp_name`), so a file
            // there was left by a writer that died: remove it and try once
            // more. (Unlinking only then saves a system call per login.)
            Err(Errno::EEXIST) => {
                unlinkat(&self.dir_fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| Error::io(&tmp_path, "remove stale temp file", e.into()))?;
                create()
            }
            other => other,
        }
        .map_err(|e| Error::io(&tmp_path, "create", e.into()))?;
        let mut file = File::from(fd);
        let cleanup = |dir: &OwnedFd| {
            let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        };
        if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
            cleanup(&self.dir_fd);
            return Err(Error::io(&tmp_path, "write", e));
        }
        let locked = match Held::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, e)) => {
                cleanup(&self.dir_fd);
                return Err(Error::io(&tmp_path, "lock", e.into()));
            }
        };
        if let Err(e) = renameat2(
            &self.dir_fd,
            tmp.as_os_str(),
            &self.dir_fd,
            self.name.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            cleanup(&self.dir_fd);
            if e == Errno::EEXIST {
                return Err(Error::Busy {
                    path: self.spec.path.clone(),
                });
            }
            return Err(Error::io(&self.spec.path, "rename", e.into()));
        }
        self.lock = Some(locked);
        // The spare, while there is room: the next saves need no new inode
        // or block. Without it the next save makes one (and fails only if
        // the file system is full by then).
        let spare_name = spare_name(&self.name);
        let spare_path = self.dir_path.join(&spare_name);
        if let Ok(mut spare) = self.open_spare(&spare_name, &spare_path, Instant::now()) {
            if write_in_place(&mut spare, bytes).is_ok() {
                self.spare = Some(spare);
            }
        }
        fsync(&self.dir_fd).map_err(|e| Error::io(&self.dir_path, "fsync directory", e.into()))
    }
}

/// Writes `bytes` over the start of `file`, cuts it to that length and
/// makes the data durable (`fdatasync`: the bytes and the size, which is
/// what a reader after a crash needs; the mtime is not). Writing over
/// blocks the file already has needs no new ones, and at an unchanged size
/// no journal commit either.
fn write_in_place(file: &mut Held, bytes: &[u8]) -> std::io::Result<()> {
    let f: &File = file;
    f.write_all_at(bytes, 0)?;
    let len = bytes.len() as u64;
    if f.metadata()?.len() != len {
        f.set_len(len)?;
    }
    f.sync_data()
}

/// Whether two files hold the same devices (names, keys, parameters),
/// whatever their state: then the width and the keys in the spare are
/// still right.
fn same_devices(a: &DeviceFile, b: &DeviceFile) -> bool {
    a.devices.len() == b.devices.len()
        && a.devices.iter().zip(&b.devices).all(|(x, y)| {
            x.name == y.name
                && x.key == y.key
                && x.params() == y.params()
                && x.confirmed == y.confirmed
        })
}

/// The width every save of `devices` is padded to: the length of the file
/// with every state field at its widest (issue 11, findings 1 and 8). It
/// depends only on the devices, so a success and a failure write the same
/// number of bytes, and a spare of that size is rewritten without a block.
/// Capped at [`MAX_FILE_SIZE`].
///
/// Every state field a login can change is set to its widest here; a new
/// state field must be added here, or a success and a
/// failure could differ in size again (`finding_1_…` and the fault matrix
/// would not see it; `a_login_writes_the_same_number_of_bytes_whatever_its_outcome`
/// in `shared/tests/hardening.rs` would).
pub fn padded_len(devices: &DeviceFile, user: &str) -> usize {
    let widest_time = Timestamp::from_micros(253_402_300_799_999_999); // 9999-12-31T23:59:59.999999Z
    let mut widest = devices.clone();
    for d in &mut widest.devices {
        d.drift = i16::MIN;
        d.last_t = i64::MIN;
        d.confirmed = false;
        d.last_used_at = Some(widest_time);
        d.throttling_failure_count = u32::MAX;
        d.throttling_failure_timestamp = Some(widest_time);
    }
    if let Some(b) = &mut widest.backup {
        // A login only ever removes codes: the set as it is is the widest.
        b.last_used_at = Some(widest_time);
        b.throttling_failure_count = u32::MAX;
        b.throttling_failure_timestamp = Some(widest_time);
    }
    widest.toml_len(user).min(MAX_FILE_SIZE as usize)
}

/// The exact text [`Locked::save`] writes: the canonical TOML of
/// `devices`, padded to [`padded_len`].
pub fn stored_text(devices: &DeviceFile, user: &str) -> Zeroizing<String> {
    let width = padded_len(devices, user);
    // Room for the padding up front: a String that grows frees the old
    // buffer, keys and all, unwiped.
    let mut text = Zeroizing::new(devices.to_toml_with_room(user, width));
    pad(&mut text, width);
    text
}

/// Pads `text` to `width` bytes with a comment line of spaces (TOML
/// ignores it); a text already that long is left alone.
fn pad(text: &mut String, width: usize) {
    match width.saturating_sub(text.len()) {
        0 => {}
        1 => text.push('\n'),
        n => {
            text.push('#');
            text.push_str(&" ".repeat(n - 2));
            text.push('\n');
        }
    }
}

/// Creates the device file's directory (and missing parents, as the user
/// when the spec says so) with mode 0700 for the last level.
pub fn ensure_dir(spec: &FileSpec) -> Result<()> {
    let (dir, _) = spec.parts()?;
    let _act = spec.act()?;
    let mut missing: Vec<&Path> = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p);
        cur = p.parent();
    }
    for p in missing.into_iter().rev() {
        let (Some(parent), Some(leaf)) = (p.parent(), p.file_name()) else {
            continue;
        };
        let pfd = open(
            parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(parent, "open directory", e.into()))?;
        match mkdirat(&pfd, leaf, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::io(p, "create directory", e.into())),
        }
    }
    Ok(())
}

/// The device-file store: one file, its owner's name (for the header
/// comment), and how long to wait for the lock.
#[derive(Debug)]
pub struct FileStore {
    spec: FileSpec,
    user: String,
    wait: Duration,
    /// A fixed clock, for replaying a scenario at chosen instants; `None`:
    /// the system clock.
    clock: Option<Timestamp>,
    /// The last unlocked read: the next transaction reads the file again
    /// under the lock and reuses this parse when the bytes are the same (a
    /// login reads before the prompt and again under the lock; parsing the
    /// same bytes twice is waste).
    last_read: RefCell<Option<(DeviceFile, Bytes)>>,
}

impl FileStore {
    /// The store of `spec`, whose header names `user`.
    pub fn new(spec: FileSpec, user: &str, wait: Duration) -> FileStore {
        FileStore {
            spec,
            user: user.to_owned(),
            wait,
            clock: None,
            last_read: RefCell::new(None),
        }
    }

    /// The same store with its clock frozen at `now`.
    pub fn at(self, now: Timestamp) -> FileStore {
        FileStore {
            clock: Some(now),
            ..self
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.unwrap_or_else(Timestamp::now)
    }

    /// The same store with another lock wait.
    pub fn with_wait(self, wait: Duration) -> FileStore {
        FileStore { wait, ..self }
    }

    /// Whose file this is.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Where the file is and how it is opened.
    pub fn spec(&self) -> &FileSpec {
        &self.spec
    }

    /// See [`super::Store::read`]. The clock is the system's.
    pub fn read(&self) -> Result<Snapshot> {
        let read = read_identified(&self.spec)?;
        let devices = read.as_ref().map(|(devices, _)| devices.clone());
        *self.last_read.borrow_mut() = read;
        Ok(Snapshot {
            devices,
            now: self.now(),
        })
    }

    /// See [`super::Store::update`].
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(Option<&DeviceFile>, Timestamp) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        self.update_staged(|file, now, _| change(file, now))
    }

    /// See [`super::Store::update_staged`]: the one place that takes the
    /// device-file lock. With no file yet, a change that saves creates the
    /// file (and its directory), never replacing one created meanwhile.
    pub fn update_staged<T, E>(
        &self,
        change: impl FnOnce(
            Option<&DeviceFile>,
            Timestamp,
            &mut dyn FnMut(&DeviceFile) -> Result<()>,
        ) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        // `None`: no directory yet.
        let known = self.last_read.borrow_mut().take();
        let mut locked = lock_reusing(&self.spec, self.wait, known)?;
        // The clock is read once, under the lock.
        let now = self.now();
        let current = locked.as_ref().and_then(Locked::devices).cloned();
        let decided = {
            let mut commit = |next: &DeviceFile| {
                self.locked_for_save(&mut locked)?
                    .save_staged(next, &self.user)
            };
            change(current.as_ref(), now, &mut commit)
        };
        let saved = match decided {
            Ok(Change::Keep(value)) => Ok(value),
            Ok(Change::Save(next, value)) => self
                .locked_for_save(&mut locked)
                .and_then(|l| l.save(&next, &self.user))
                .map(|()| value)
                .map_err(E::from),
            Err(e) => Err(e),
        };
        // A staged save (the login's failure, stored before the code was
        // compared) is made durable whatever came after it; its error only
        // matters when nothing else failed.
        let synced = match locked.as_mut() {
            Some(l) => l.sync_dir(),
            None => Ok(()),
        };
        let value = saved?;
        synced?;
        Ok(value)
    }

    /// The lock to save under: the one held, or, when there was no file
    /// (nor directory), a new one on the created directory.
    fn locked_for_save<'a>(&self, slot: &'a mut Option<Locked>) -> Result<&'a mut Locked> {
        if slot.is_none() {
            ensure_dir(&self.spec)?;
            let l = lock(&self.spec, self.wait)?;
            if l.devices().is_some() {
                // Created by someone else after we found no directory.
                return Err(Error::Busy {
                    path: self.spec.path.clone(),
                });
            }
            *slot = Some(l);
        }
        slot.as_mut().ok_or_else(|| Error::Busy {
            path: self.spec.path.clone(),
        })
    }
}
