//! The module's side of the C boundary: the six PAM entry points and
//! [`LibPam`], the safe wrapper that implements [`Host`] over libpam
//! (`pam_get_user`, `pam_get_item`, `pam_set_item`, the conversation,
//! `pam_syslog`, module data).
//!
//! Each entry point is a trampoline: it checks the pointers libpam passes,
//! runs the safe code under [`guard`] (`catch_unwind`; a panic fails
//! closed with `PAM_AUTH_ERR` and never unwinds into libpam or the host
//! program), and returns the code [`auth::pam_code`] chose.
//!
//! What it is not: the C declarations (structs, functions, constants are in
//! `sys`), nor any decision — what to ask, what to accept and which code to
//! return are `auth`'s. Every unsafe operation here sits alone in its block
//! under one `SAFETY` comment; the lint below holds it to that.
#![deny(clippy::multiple_unsafe_ops_per_block)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use shared::Answer;
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{self, Host, Level, Style};
use crate::code;
use crate::sys::{
    pam_get_data, pam_get_item, pam_get_user, pam_set_data, pam_set_item, pam_syslog, PamConv,
    PamHandle, PamMessage, PamResponse, PAM_AUTHTOK, PAM_CONV, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF,
    PAM_PROMPT_ECHO_ON, PAM_RHOST, PAM_SILENT, PAM_TEXT_INFO,
};

/// Authentication: the module's job.
///
/// # Safety
/// Called by libpam with its handle and the service line's arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    guard(code::PAM_AUTH_ERR, || {
        if pamh.is_null() {
            return code::PAM_SYSTEM_ERR;
        }
        let Ok(argc) = usize::try_from(argc) else {
            return code::PAM_SERVICE_ERR;
        };
        let argv: &[*const c_char] = if argc == 0 {
            &[]
        } else if argv.is_null() {
            return code::PAM_SERVICE_ERR;
        } else {
            // SAFETY: libpam passes `argc` entries in `argv` (non-null here),
            // valid for the duration of this call.
            unsafe { std::slice::from_raw_parts(argv, argc) }
        };
        let mut args: Vec<&[u8]> = Vec::with_capacity(argc);
        for &arg in argv {
            if arg.is_null() {
                return code::PAM_SERVICE_ERR;
            }
            // SAFETY: each entry is a NUL-terminated string owned by libpam
            // that outlives this call.
            args.push(unsafe { CStr::from_ptr(arg) }.to_bytes());
        }
        let mut host = LibPam {
            pamh,
            silent: flags & PAM_SILENT != 0,
        };
        auth::pam_code(&auth::run(&mut host, &args))
    })
}

/// No credentials to establish: succeed, so that a second factor never
/// fails `pam_setcred` for the whole stack.
///
/// # Safety
/// Called by libpam; touches none of its arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::PAM_SUCCESS
}

/// Not an account module: a stray line in the account stack changes nothing.
///
/// # Safety
/// Called by libpam; touches none of its arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::PAM_IGNORE
}

/// Not a session module.
///
/// # Safety
/// Called by libpam; touches none of its arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_open_session(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::PAM_IGNORE
}

/// Not a session module.
///
/// # Safety
/// Called by libpam; touches none of its arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_close_session(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::PAM_IGNORE
}

/// Devices are managed with totp-enroll, not through `passwd`.
///
/// # Safety
/// Called by libpam; touches none of its arguments.
// SAFETY: the name libpam looks up in the module; the only symbol of that
// name in this .so, with the signature of <security/pam_modules.h>.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::PAM_IGNORE
}

/// Runs `f`, turning a panic into `on_panic`: no unwinding reaches libpam or
/// the host program, and a panic fails closed.
fn guard(on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc,
        Err(payload) => {
            // Dropping a panic payload can itself panic; never let it unwind.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            on_panic
        }
    }
}

/// What every module-data name of pam_totp begins with. Data names are
/// shared by all the modules of a stack and [`LibPam::get_data`] trusts what
/// it finds under a name to be what [`LibPam::set_data`] stored, so both
/// refuse any other name.
const DATA_PREFIX: &[u8] = b"pam_totp.";

/// [`Host`] over a live libpam handle (non-null, valid for the hook call).
struct LibPam {
    pamh: *mut PamHandle,
    silent: bool,
}

impl LibPam {
    /// A string item (`PAM_AUTHTOK`), copied; at most `MAX_ANSWER_LEN + 1`
    /// bytes are read, which is enough to tell that it is too long.
    fn string_item(&self, item_type: c_int) -> Result<Option<Answer>, c_int> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: `self.pamh` is the live handle of this hook; `item` is a
        // valid out-pointer. libpam keeps ownership of what it returns.
        let rc = unsafe { pam_get_item(self.pamh, item_type, &mut item) };
        if rc != code::PAM_SUCCESS {
            return Err(rc);
        }
        if item.is_null() {
            return Ok(None);
        }
        // SAFETY: string items are NUL-terminated strings owned by libpam,
        // valid until the item is changed; we copy before returning.
        Ok(Some(unsafe { bounded_copy(item.cast::<c_char>()) }))
    }

    /// One message of style `msg_style` through the application's
    /// conversation function: the answer, if the application gave one. No
    /// answer is an error for a prompt, not for a message that asks none
    /// (`PAM_ERROR_MSG`, `PAM_TEXT_INFO`).
    fn conversation(&mut self, msg_style: c_int, text: &str) -> Result<Option<Answer>, c_int> {
        let text = CString::new(text.replace('\0', " ")).map_err(|_| code::PAM_BUF_ERR)?;
        let mut item: *const c_void = ptr::null();
        // SAFETY: live handle and valid out-pointer; libpam owns the item.
        let rc = unsafe { pam_get_item(self.pamh, PAM_CONV, &mut item) };
        if rc != code::PAM_SUCCESS {
            return Err(rc);
        }
        // SAFETY: PAM_CONV is a `struct pam_conv` owned by libpam (or null),
        // unchanged during this call.
        let Some(conv) = (unsafe { item.cast::<PamConv>().as_ref() }) else {
            return Err(code::PAM_CONV_ERR);
        };
        let Some(func) = conv.conv else {
            return Err(code::PAM_CONV_ERR);
        };
        let message = PamMessage {
            msg_style,
            msg: text.as_ptr(),
        };
        let mut message_ptr: *const PamMessage = &message;
        let mut responses: *mut PamResponse = ptr::null_mut();
        // SAFETY: the application's conversation function, called as
        // pam_conv(3) specifies: one message (which outlives the call), an
        // out-pointer for the response array, and its own appdata.
        let rc = unsafe { func(1, &mut message_ptr, &mut responses, conv.appdata_ptr) };
        if rc != code::PAM_SUCCESS {
            return Err(rc);
        }
        if responses.is_null() {
            return match msg_style {
                PAM_ERROR_MSG | PAM_TEXT_INFO => Ok(None),
                _ => Err(code::PAM_CONV_ERR),
            };
        }
        // SAFETY: on success the application hands us a `malloc`ed array of
        // one response (one per message), non-null here, which is now ours.
        Ok(unsafe { take_response(responses) })
    }

    /// Shows `text` as an informational message (`PAM_TEXT_INFO`), which
    /// asks for no answer: any the application gives is wiped and dropped.
    /// Like [`Host::converse`], it does not look at `silent`; the caller
    /// does.
    // Not on the Host trait yet: issues 11 and 14 use it.
    #[allow(dead_code)]
    pub fn text_info(&mut self, text: &str) -> Result<(), c_int> {
        self.conversation(PAM_TEXT_INFO, text).map(drop)
    }

    /// Keeps `value` with the handle under `name` for a later hook of the
    /// same PAM transaction. libpam owns it from then on and gives it to
    /// [`drop_data`], which wipes and frees it, when a new `set_data` of the
    /// same name replaces it or at `pam_end`. `name` must begin with
    /// [`DATA_PREFIX`] (else `PAM_BAD_ITEM`); on any error `value` is wiped.
    // Not on the Host trait yet: issues 11 and 14 use it.
    #[allow(dead_code)]
    pub fn set_data(&mut self, name: &CStr, mut value: Box<[u8]>) -> Result<(), c_int> {
        if !name.to_bytes().starts_with(DATA_PREFIX) {
            value.zeroize();
            return Err(code::PAM_BAD_ITEM);
        }
        let data = Box::into_raw(Box::new(value));
        // SAFETY: live handle; `name` is a NUL-terminated string that libpam
        // copies; `data` is a `Box<Box<[u8]>>` handed over to libpam, which
        // gives it back only to `drop_data` (and lends it to `get_data`).
        let rc = unsafe { pam_set_data(self.pamh, name.as_ptr(), data.cast(), Some(drop_data)) };
        if rc == code::PAM_SUCCESS {
            return Ok(());
        }
        // SAFETY: `data` comes from `Box::into_raw` above, and a failed
        // pam_set_data keeps no pointer to it and never calls the cleanup,
        // so it is still ours alone.
        let mut value = unsafe { Box::from_raw(data) };
        value.zeroize();
        Err(rc)
    }

    /// A copy of what [`LibPam::set_data`] kept under `name` in this PAM
    /// transaction; `None` when there is none (or `name` does not begin
    /// with [`DATA_PREFIX`]).
    // Not on the Host trait yet: issues 11 and 14 use it.
    #[allow(dead_code)]
    pub fn get_data(&self, name: &CStr) -> Option<Vec<u8>> {
        if !name.to_bytes().starts_with(DATA_PREFIX) {
            return None;
        }
        let mut data: *const c_void = ptr::null();
        // SAFETY: live handle; `name` is NUL-terminated; `data` is a valid
        // out-pointer. libpam keeps ownership of what it returns.
        let rc = unsafe { pam_get_data(self.pamh, name.as_ptr(), &mut data) };
        if rc != code::PAM_SUCCESS {
            return None;
        }
        // SAFETY: under a name with pam_totp's prefix only `set_data` stores
        // data, a `Box<Box<[u8]>>` that libpam keeps alive until it is
        // replaced or `pam_end` — neither can happen during this call.
        let value = unsafe { data.cast::<Box<[u8]>>().as_ref() }?;
        Some(value.to_vec())
    }
}

/// The `pam_set_data` cleanup of [`LibPam::set_data`]: wipes and frees the
/// value, whatever `error_status` says (replaced, or `pam_end`).
///
/// # Safety
/// `data` is null or the pointer `set_data` handed to libpam, given back
/// once.
unsafe extern "C" fn drop_data(_pamh: *mut PamHandle, data: *mut c_void, _error_status: c_int) {
    if data.is_null() {
        return;
    }
    // SAFETY: the caller gives back, once, the `Box::into_raw` of a
    // `Box<Box<[u8]>>` made by `set_data`.
    let mut value = unsafe { Box::from_raw(data.cast::<Box<[u8]>>()) };
    let bytes: &mut [u8] = &mut value;
    bytes.zeroize();
}

/// Takes the one response of a conversation: a copy of its answer (if
/// any), after which the answer is wiped and both it and the array are
/// freed.
///
/// # Safety
/// `responses` is a non-null, `malloc`ed array of one `pam_response` whose
/// `resp` is null or a `malloc`ed NUL-terminated string, both ours to free
/// and not used after this call.
unsafe fn take_response(responses: *mut PamResponse) -> Option<Answer> {
    // SAFETY: the caller guarantees one readable response at `responses`.
    let resp = unsafe { (*responses).resp };
    let answer = if resp.is_null() {
        None
    } else {
        // SAFETY: a non-null `resp` is a NUL-terminated string.
        let answer = unsafe { bounded_copy(resp) };
        // SAFETY: the same NUL-terminated string; strlen stops at its NUL.
        let len = unsafe { libc::strlen(resp) };
        // SAFETY: the `len` bytes before that NUL are the string's, and it
        // is ours to write: the application handed it over.
        unsafe { std::slice::from_raw_parts_mut(resp.cast::<u8>(), len) }.zeroize();
        // SAFETY: `resp` was `malloc`ed and is ours; it is not used again.
        unsafe { libc::free(resp.cast::<c_void>()) };
        Some(answer)
    };
    // SAFETY: the array was `malloc`ed and is ours; its one entry was read
    // above and it is not used again.
    unsafe { libc::free(responses.cast::<c_void>()) };
    answer
}

/// Copies a C string into an [`Answer`], reading at most
/// `MAX_ANSWER_LEN + 1` bytes.
///
/// # Safety
/// `p` must point to a NUL-terminated string.
unsafe fn bounded_copy(p: *const c_char) -> Answer {
    // SAFETY: the caller guarantees a NUL-terminated string; strnlen stops
    // at the NUL or after the bound, whichever comes first.
    let len = unsafe { libc::strnlen(p, auth::MAX_ANSWER_LEN + 1) };
    // SAFETY: `len` bytes from `p` were just found to be readable.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    lossy(bytes)
}

/// `String::from_utf8_lossy`, into one allocation that never grows (each
/// invalid byte becomes at most 3 bytes): a growing String would free a
/// copy of the answer, which may hold a password (`forward_pass`), unwiped.
fn lossy(bytes: &[u8]) -> Answer {
    let mut text = String::with_capacity(bytes.len().saturating_mul(3));
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    Answer::new(text)
}

impl Host for LibPam {
    fn user(&mut self) -> Result<String, c_int> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: live handle; `user` is a valid out-pointer; a null prompt
        // lets libpam use its default. libpam owns the returned string.
        let rc = unsafe { pam_get_user(self.pamh, &mut user, ptr::null()) };
        if rc != code::PAM_SUCCESS {
            return Err(rc);
        }
        if user.is_null() {
            return Err(code::PAM_SERVICE_ERR);
        }
        // SAFETY: a non-null PAM_USER is a NUL-terminated string owned by
        // libpam, valid during this hook; it is copied at once.
        let name = unsafe { CStr::from_ptr(user) };
        name.to_str()
            .map(str::to_owned)
            .map_err(|_| code::PAM_USER_UNKNOWN)
    }

    fn converse(&mut self, style: Style, text: &str) -> Result<Option<Answer>, c_int> {
        let msg_style = match style {
            Style::PromptEchoOff => PAM_PROMPT_ECHO_OFF,
            Style::PromptEchoOn => PAM_PROMPT_ECHO_ON,
            Style::ErrorMsg => PAM_ERROR_MSG,
        };
        self.conversation(msg_style, text)
    }

    fn authtok(&mut self) -> Result<Option<Answer>, c_int> {
        self.string_item(PAM_AUTHTOK)
    }

    fn set_authtok(&mut self, token: &Answer) -> Result<(), c_int> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(token.expose().len() + 1));
        bytes.extend(token.expose().bytes().filter(|b| *b != 0));
        bytes.push(0);
        // SAFETY: live handle; `bytes` is a NUL-terminated buffer that
        // outlives the call, and pam_set_item copies it (keeping no pointer).
        let rc = unsafe { pam_set_item(self.pamh, PAM_AUTHTOK, bytes.as_ptr().cast::<c_void>()) };
        if rc == code::PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        let priority = libc::LOG_AUTHPRIV
            | match level {
                Level::Error => libc::LOG_ERR,
                Level::Notice => libc::LOG_NOTICE,
                Level::Info => libc::LOG_INFO,
                Level::Debug => libc::LOG_DEBUG,
            };
        let Ok(text) = CString::new(message.replace('\0', " ")) else {
            return;
        };
        // SAFETY: live handle; the format is the literal "%s" matched by
        // exactly one NUL-terminated string that outlives the call.
        unsafe { pam_syslog(self.pamh, priority, c"%s".as_ptr(), text.as_ptr()) };
    }

    fn silent(&self) -> bool {
        self.silent
    }

    fn rhost(&mut self) -> Option<String> {
        self.string_item(PAM_RHOST)
            .ok()
            .flatten()
            .map(|a| a.expose().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `malloc`ed copy of `text`, as a conversation function returns it.
    fn c_string(text: &CStr) -> *mut c_char {
        // SAFETY: `text` is NUL-terminated; strdup mallocs the copy.
        let copy = unsafe { libc::strdup(text.as_ptr()) };
        assert!(!copy.is_null());
        copy
    }

    /// A `malloc`ed array of one response holding `resp`.
    fn responses(resp: *mut c_char) -> *mut PamResponse {
        // SAFETY: calloc of one zeroed response; checked for null below.
        let array = unsafe { libc::calloc(1, std::mem::size_of::<PamResponse>()) };
        let array = array.cast::<PamResponse>();
        assert!(!array.is_null());
        // SAFETY: `array` is one writable, suitably aligned response.
        unsafe { (*array).resp = resp };
        array
    }

    #[test]
    fn a_response_is_copied_and_the_application_s_memory_freed() {
        let array = responses(c_string(c"123456"));
        // SAFETY: a malloc'ed array of one response with a malloc'ed string,
        // not used after.
        let answer = unsafe { take_response(array) };
        assert_eq!(answer.as_ref().map(Answer::expose), Some("123456"));

        let array = responses(ptr::null_mut());
        // SAFETY: a malloc'ed array of one response without a string.
        assert!(unsafe { take_response(array) }.is_none());
    }

    #[test]
    fn an_overlong_response_is_read_only_up_to_the_bound() {
        let long = CString::new("7".repeat(auth::MAX_ANSWER_LEN * 4)).unwrap_or_default();
        let array = responses(c_string(&long));
        // SAFETY: a malloc'ed array of one response with a malloc'ed string,
        // not used after.
        let answer = unsafe { take_response(array) };
        assert_eq!(
            answer.map(|a| a.expose().len()),
            Some(auth::MAX_ANSWER_LEN + 1)
        );
    }

    #[test]
    fn the_data_cleanup_frees_what_set_data_hands_over_and_ignores_null() {
        let data = Box::into_raw(Box::new(Box::<[u8]>::from(&b"secret"[..])));
        // SAFETY: the pointer set_data would hand over, given back once.
        unsafe { drop_data(ptr::null_mut(), data.cast(), code::PAM_SUCCESS) };
        // SAFETY: null data is allowed.
        unsafe { drop_data(ptr::null_mut(), ptr::null_mut(), code::PAM_SUCCESS) };
    }

    #[test]
    fn an_answer_that_is_not_utf8_is_read_as_from_utf8_lossy_would() {
        for bytes in [
            &b"123456"[..],
            b"p\xe9ss123456",
            b"\xff\xfe\xfd",
            b"\xf0\x9f\x98",
            "pässwörd".as_bytes(),
            b"",
        ] {
            let answer = lossy(bytes);
            assert_eq!(answer.expose(), String::from_utf8_lossy(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn a_panic_inside_the_guard_becomes_the_fail_closed_code() {
        #[allow(clippy::panic)]
        let rc = guard(code::PAM_AUTH_ERR, || panic!("boom"));
        assert_eq!(rc, code::PAM_AUTH_ERR);
        assert_eq!(
            guard(code::PAM_AUTH_ERR, || code::PAM_SUCCESS),
            code::PAM_SUCCESS
        );
    }
}
