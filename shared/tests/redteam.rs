//! Red-team findings against the store (branch `redteam`): one regression
//! test per finding, named after it. They run as root (a loop-mounted file
//! system); without root they say so and return.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pam_totp_tests::kit;
use shared::device::DeviceFile;
use shared::login;
use shared::store::{Access, Change, FileSpec, Store};
use shared::verify::{Login, Policy};
use shared::Timestamp;

/// RFC 4226's test key.
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// The TOTP instant every attempt is made at (the stores' frozen clock).
const NOW: i64 = 1_764_310_000;

fn root(test: &str) -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("SKIPPED {test}: needs root (mount)");
    }
    root
}

/// One confirmed device (the test kit's), its last step well behind NOW.
fn state() -> DeviceFile {
    let mut d = kit::device("phone", KEY_HEX).unwrap();
    d.last_t = NOW / 30 - 100;
    DeviceFile {
        devices: vec![d],
        ..DeviceFile::default()
    }
}

fn code(t: i64) -> String {
    kit::code_at(&kit::device("phone", KEY_HEX).unwrap(), t)
}

/// An ext4 with 128-byte inodes: whole-second timestamps, as on every
/// file system without sub-second times (ext4 made with `-I 128`, ext3,
/// ext2, many NFS servers). Unmounted when dropped.
struct CoarseFs {
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl CoarseFs {
    fn mount() -> CoarseFs {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().with_extension("img");
        let ok = |c: &mut Command| c.status().unwrap().success();
        assert!(ok(Command::new("truncate").args(["-s", "16M"]).arg(&image)));
        assert!(ok(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&image)));
        assert!(ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(dir.path())));
        CoarseFs { dir, image }
    }

    /// A ramfs: no multigrain timestamps, so times move once per jiffy
    /// (4 ms at HZ=250), as ext4, xfs and tmpfs did before Linux 6.13
    /// (Debian 12, Ubuntu 22.04/24.04, RHEL 9).
    fn mount_ramfs() -> CoarseFs {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().with_extension("none");
        assert!(Command::new("mount")
            .args(["-t", "ramfs", "ramfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success());
        CoarseFs { dir, image }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for CoarseFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        let _ = fs::remove_file(&self.image);
    }
}

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sleeps until just after the next whole second.
fn start_of_a_second() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 5_000_000,
    ));
}

/// Finding R1: the transaction reuses the unlocked read when the file's
/// (dev, ino, size, mtime, ctime) is unchanged, assuming every write moves
/// the ctime. On a file system with whole-second times that is false, and
/// the store itself makes a different content with the same identity
/// likely: every login save is padded to one size, and the spare scheme
/// alternates between two inodes, so two saves bring back the same inode
/// with the same size. Here, within one second: an attacker's wrong code
/// (one save), the attacker's login reads the file before its prompt, the
/// victim logs in with a code (two saves: failure, then success), and the
/// attacker submits the victim's code. The transaction acts on the read
/// taken before the victim's login and accepts the code a second time.
/// (Throttling is off here, `throttle_factor = 0`, so that the attacker's
/// wrong code does not block the victim for the second the scenario needs;
/// a code must work once whatever the throttle.)
#[test]
fn finding_r1_a_code_is_replayed_when_the_file_system_keeps_whole_second_times() {
    if !root("finding_r1_a_code_is_replayed_when_the_file_system_keeps_whole_second_times") {
        return;
    }
    replay_scenario(&CoarseFs::mount());
}

/// Finding R1 again, with the kernel's coarse (per-jiffy) times instead
/// of whole seconds: the three saves fit in one jiffy.
#[test]
fn finding_r1_a_code_is_replayed_when_the_file_system_keeps_per_jiffy_times() {
    if !root("finding_r1_a_code_is_replayed_when_the_file_system_keeps_per_jiffy_times") {
        return;
    }
    replay_scenario(&CoarseFs::mount_ramfs());
}

fn replay_scenario(fs_: &CoarseFs) {
    let policy = Policy {
        throttle_factor: 0,
        ..Policy::default()
    };
    let valid = code(NOW);
    let wrong = kit::other_code(&valid);
    for round in 0..5 {
        let spec = FileSpec {
            path: fs_.path().join(format!("devices-{round}.toml")),
            owner: 0,
            access: Access::AsCaller,
            home: None,
        };
        let store = |_: &str| Store::file(spec.clone(), "alice").at(Timestamp::from_secs(NOW));
        store("setup")
            .update(|_, _| Ok::<_, shared::Error>(Change::Save(state(), ())))
            .unwrap();

        start_of_a_second();
        let second = wall_secs();
        // The attacker's first login: a wrong code, one save.
        let first = login::attempt(&store("attacker"), wrong, &policy).unwrap();
        assert!(matches!(first.login, Login::Rejected { .. }), "{first:?}");
        // The attacker's second login reads the file, then prompts.
        let attacker = store("attacker");
        login::prepare(&attacker, &policy).unwrap();
        // Meanwhile the victim logs in with the current code.
        let victim = login::attempt(&store("victim"), &valid, &policy).unwrap();
        assert!(matches!(victim.login, Login::Accepted { .. }), "{victim:?}");
        // The attacker answers the prompt with the victim's code.
        let replay = login::attempt(&attacker, &valid, &policy).unwrap();
        if wall_secs() != second {
            eprintln!("round {round}: the scenario spanned two seconds; again");
            continue;
        }
        assert!(
            !matches!(replay.login, Login::Accepted { .. }),
            "a code the victim had just used was accepted again: {replay:?}"
        );
        return;
    }
    panic!("could not fit the scenario into one second in 5 rounds");
}
