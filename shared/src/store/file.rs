//! The device-file store (docs/design.md §6 "File safety", "Concurrency and
//! durability"): the first backend behind [`super::Store`].
//!
//! Files are opened and checked by [`crate::fsafe`]. A change is
//! lock → read → modify → write temp → fsync → lock temp → rename → fsync dir:
//! the new inode is locked before it becomes visible, so the exclusive lock
//! passes from the old file to the new one without a gap, and a process that
//! waited on the old inode notices the replacement and starts over.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, openat, renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode};
use nix::unistd::{fsync, getpid, gettid, unlinkat, UnlinkatFlags};
use zeroize::Zeroizing;

use crate::config::PathTemplate;
use crate::device::DeviceFile;
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
    /// The rule for every file pam-totp touches on a user's behalf: inside
    /// the user's own home (not `/`), as the user, so that root never
    /// follows the user's links with root's rights and what it creates is
    /// the user's; anywhere else, as the caller.
    pub fn for_path(path: &Path, user: &UserInfo) -> Access {
        let has_home = user.home != Path::new("/") && user.home.is_absolute();
        if has_home && user.uid != 0 && path.starts_with(&user.home) {
            Access::AsUser {
                uid: user.uid,
                gid: user.gid,
            }
        } else {
            Access::AsCaller
        }
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
        })
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

fn parse(spec: &FileSpec, bytes: &[u8]) -> Result<DeviceFile> {
    DeviceFile::parse(fsafe::text(&spec.path, bytes)?, &spec.path)
}

/// Reads and parses a device file without locking (to decide whether to
/// prompt). `Ok(None)`: the file or its directory does not exist.
pub fn read(spec: &FileSpec) -> Result<Option<DeviceFile>> {
    Ok(read_identified(spec)?.map(|(devices, _)| devices))
}

/// What identifies one version of a file's content: the inode and its
/// size and change times. Our writers never change a file in place (they
/// rename a new inode over it), and any write changes the ctime, which
/// nobody can set: the same identity means the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(st: &nix::sys::stat::FileStat) -> Version {
        Version {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// [`read`], with the version of the file that was read.
fn read_identified(spec: &FileSpec) -> Result<Option<(DeviceFile, Version)>> {
    let (dir_path, name) = spec.parts()?;
    let _act = spec.act()?;
    let Some(dir) = Dir::open(dir_path, spec.owner)? else {
        return Ok(None);
    };
    let Some((mut file, st)) = fsafe::open_private(&dir, &name, &spec.path, spec.owner)? else {
        return Ok(None);
    };
    let bytes = fsafe::read_exact_size(&spec.path, &mut file, &st)?;
    Ok(Some((parse(spec, &bytes)?, Version::of(&st))))
}

/// A device file held under an exclusive lock. Dropping it unlocks.
#[derive(Debug)]
pub struct Locked {
    spec: FileSpec,
    name: OsString,
    dir_fd: OwnedFd,
    dir_path: PathBuf,
    /// The locked file; `None` when there is no file yet.
    lock: Option<Flock<File>>,
    devices: Option<DeviceFile>,
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

/// [`lock`], with `Ok(None)` when the directory does not exist; when the
/// locked file is still exactly the version `known` was parsed from, its
/// devices are taken from there instead of reading and parsing the file a
/// second time.
fn lock_reusing(
    spec: &FileSpec,
    wait: Duration,
    known: Option<(DeviceFile, Version)>,
) -> Result<Option<Locked>> {
    let (dir_path, name) = spec.parts()?;
    let act = spec.act()?;
    let Some(dir) = Dir::open(dir_path, spec.owner)? else {
        return Ok(None);
    };
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        let Some((file, st)) = fsafe::open_private(&dir, &name, &spec.path, spec.owner)? else {
            return Ok(Some(Locked {
                spec: spec.clone(),
                name,
                dir_fd: dir.fd,
                dir_path: dir.path,
                lock: None,
                devices: None,
                _act: act,
            }));
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                // Still the file at that name? A writer may have replaced it
                // while we waited on the old inode.
                match fstatat(
                    &dir.fd,
                    name.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                        // Under the lock, the held inode's own times say
                        // whether it is still what `known` was parsed from.
                        let held =
                            fstat(&*locked).map_err(|e| Error::io(&spec.path, "stat", e.into()))?;
                        let devices = match known {
                            Some((devices, version)) if version == Version::of(&held) => devices,
                            _ => {
                                let bytes = fsafe::read_exact_size(&spec.path, &mut locked, &held)?;
                                parse(spec, &bytes)?
                            }
                        };
                        return Ok(Some(Locked {
                            spec: spec.clone(),
                            name,
                            dir_fd: dir.fd,
                            dir_path: dir.path,
                            lock: Some(locked),
                            devices: Some(devices),
                            _act: act,
                        }));
                    }
                    // Replaced meanwhile: start over, within the same wait.
                    Ok(_) | Err(Errno::ENOENT) if Instant::now() < deadline => continue,
                    Ok(_) | Err(Errno::ENOENT) => {
                        return Err(Error::Busy {
                            path: spec.path.clone(),
                        })
                    }
                    Err(e) => return Err(Error::io(&spec.path, "stat", e.into())),
                }
            }
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
    pub fn save(&mut self, devices: &DeviceFile, user: &str) -> Result<()> {
        let text = Zeroizing::new(devices.to_toml(user));
        self.replace_bytes(text.as_bytes())?;
        self.devices = Some(devices.clone());
        Ok(())
    }

    /// Durably replaces the file with `bytes` (already validated by the
    /// caller). On error the old file is untouched.
    fn replace_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.spec.temp_name(&self.name, self.lock.is_some());
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
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, e)) => {
                cleanup(&self.dir_fd);
                return Err(Error::io(&tmp_path, "lock", e.into()));
            }
        };
        let result = if self.lock.is_some() {
            renameat(
                &self.dir_fd,
                tmp.as_os_str(),
                &self.dir_fd,
                self.name.as_os_str(),
            )
        } else {
            // No file when we looked: create without replacing one that
            // another process created meanwhile.
            nix::fcntl::renameat2(
                &self.dir_fd,
                tmp.as_os_str(),
                &self.dir_fd,
                self.name.as_os_str(),
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
        };
        if let Err(e) = result {
            cleanup(&self.dir_fd);
            if e == Errno::EEXIST {
                return Err(Error::Busy {
                    path: self.spec.path.clone(),
                });
            }
            return Err(Error::io(&self.spec.path, "rename", e.into()));
        }
        self.lock = Some(locked);
        fsync(&self.dir_fd).map_err(|e| Error::io(&self.dir_path, "fsync directory", e.into()))
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
    /// The last unlocked read, reused by the next [`FileStore::update`] when
    /// the file has not changed since (a login reads before the prompt and
    /// again under the lock; the second parse is then waste).
    last_read: RefCell<Option<(DeviceFile, Version)>>,
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

    /// See [`super::Store::update`]: the one place that takes the
    /// device-file lock. With no file yet, a change that saves creates the
    /// file (and its directory), never replacing one created meanwhile.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(Option<&DeviceFile>, Timestamp) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        // `None`: no directory yet.
        let mut locked = lock_reusing(&self.spec, self.wait, self.last_read.borrow_mut().take())?;
        // The clock is read once, under the lock.
        let now = self.now();
        let current = locked.as_ref().and_then(Locked::devices);
        let (next, value) = match change(current, now)? {
            Change::Keep(value) => return Ok(value),
            Change::Save(next, value) => (next, value),
        };
        let mut locked = match locked.take() {
            Some(l) => l,
            None => {
                ensure_dir(&self.spec)?;
                let l = lock(&self.spec, self.wait)?;
                if l.devices().is_some() {
                    // Created by someone else after we found no directory.
                    return Err(Error::Busy {
                        path: self.spec.path.clone(),
                    }
                    .into());
                }
                l
            }
        };
        locked.save(&next, &self.user)?;
        Ok(value)
    }
}
