//! Reading a device file leaves no copy of a key in freed memory, with
//! whichever toml version the build resolved (Debian 13's 0.8 or the
//! current 1). The allocator of this test binary looks into every block as
//! it is freed, while a test has armed it, for the key's hex text and for
//! its bytes.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use shared::device::DeviceFile;
use zeroize::Zeroizing;

/// A key no other test data has (20 bytes).
const KEY_HEX: &str = "7a3f19c5e2d84b6071af3c9e5d2b8f4a6c1e0d97";

/// The thread being watched (0: none). Other test threads free their own
/// copies meanwhile (the control test's, `format!`'s growing buffers).
static ARMED: AtomicI32 = AtomicI32::new(0);
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// The key's bytes, set before arming.
static KEY_BYTES: Mutex<[u8; 20]> = Mutex::new([0; 20]);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Watch;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// SAFETY: every call is passed on to the system allocator (allocations
// zeroed, which any layout allows); `dealloc` only reads the block it is given, before freeing it.
unsafe impl GlobalAlloc for Watch {
    /// Always zeroed: a block that comes back from the heap must not still
    /// hold what an earlier owner freed unwiped (the control test's copies,
    /// `format!`'s grown buffers), or its unwritten bytes would be taken
    /// for a copy made inside the watched window.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let armed = ARMED.load(Ordering::SeqCst);
        // gettid is a bare system call: no allocation, no thread-local.
        if armed != 0 && armed == posix::unistd::gettid() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes that
            // this allocator handed out; it is read before being freed.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            // try_lock: never wait inside the allocator.
            let bytes = KEY_BYTES.try_lock().map(|k| *k).unwrap_or([0; 20]);
            if contains(block, KEY_HEX.as_bytes()) || contains(block, &bytes) {
                found_one();
            }
        }
        // SAFETY: the block came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// A place for a debugger's breakpoint (`break wipe::found_one`) to show
/// who freed the copy.
#[inline(never)]
fn found_one() {
    FOUND.fetch_add(1, Ordering::SeqCst);
}

#[global_allocator]
static WATCH: Watch = Watch;

/// A device file holding the key, in a buffer wiped when dropped (as the
/// store reads it).
fn device_file() -> Zeroizing<String> {
    Zeroizing::new(format!(
        "version = 1\n\n[[device]]\nname = \"phone\"\nkey = \"{KEY_HEX}\"\n\
         algorithm = \"SHA1\"\ndigits = 6\nstep = 30\nt0 = 0\ntolerance = 1\n\
         drift = 0\nlast_t = -1\nconfirmed = true\nthrottling_failure_count = 0\n"
    ))
}

/// Copies of the key found in blocks freed while `f` ran.
fn copies_left_by(f: impl FnOnce()) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut k = KEY_BYTES.lock().unwrap();
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&KEY_HEX[2 * i..2 * i + 2], 16).unwrap();
        }
    }
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(posix::unistd::gettid(), Ordering::SeqCst);
    f();
    ARMED.store(0, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn parsing_a_device_file_leaves_no_copy_of_the_key_in_freed_memory() {
    let text = device_file();
    let found = copies_left_by(|| {
        let file = DeviceFile::parse(&text, Path::new("/x/devices.toml")).unwrap();
        assert_eq!(file.devices.len(), 1);
        drop(file);
    });
    assert_eq!(found, 0, "freed blocks still held the key");
}

#[test]
fn a_device_file_with_an_error_after_the_key_leaves_no_copy_either() {
    let text = Zeroizing::new(format!("{}unknown = 1\n", device_file().as_str()));
    let found = copies_left_by(|| {
        let e = DeviceFile::parse(&text, Path::new("/x/devices.toml")).unwrap_err();
        assert!(e.to_string().contains("unknown key"), "{e}");
    });
    assert_eq!(found, 0, "freed blocks still held the key");
}

/// The control: the watch does see a copy that is freed unwiped, here by
/// reading the same text into toml's own table type.
#[test]
fn the_watch_sees_a_key_that_toml_s_own_table_frees_unwiped() {
    let text = device_file();
    let found = copies_left_by(|| {
        let table: toml::Table = toml::from_str(&text).unwrap();
        drop(table);
    });
    assert!(found > 0, "the watch missed an unwiped copy");
}
