//! Every `unsafe` line of pam-totp: the six PAM entry points and the libpam
//! calls the module makes (`pam_get_user`, `pam_get_item`, `pam_set_item`,
//! the conversation, `pam_syslog`).
//!
//! Each entry point is a trampoline: it checks the pointers libpam passes,
//! runs the safe code under [`guard`] (`catch_unwind`; a panic fails
//! closed with `PAM_AUTH_ERR` and never unwinds into libpam or the host
//! program), and returns the code [`auth::pam_code`] chose.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use shared::Answer;
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{self, Host, Level, Style};
use crate::code;

/// libpam's opaque `pam_handle_t`.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: Option<
        unsafe extern "C" fn(
            num_msg: c_int,
            msg: *mut *const PamMessage,
            resp: *mut *mut PamResponse,
            appdata_ptr: *mut c_void,
        ) -> c_int,
    >,
    appdata_ptr: *mut c_void,
}

// From <security/_pam_types.h>.
const PAM_SILENT: c_int = 0x8000;
const PAM_CONV: c_int = 5;
const PAM_AUTHTOK: c_int = 6;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;

#[link(name = "pam")]
extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
        -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    // Variadic; only ever called with the format "%s" and one C string.
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// Authentication: the module's job.
///
/// # Safety
/// Called by libpam with its handle and the service line's arguments.
#[no_mangle]
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
        if argc > 0 && argv.is_null() {
            return code::PAM_SERVICE_ERR;
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(argc);
        for i in 0..argc {
            // SAFETY: libpam passes `argc` entries in `argv` (checked non-null
            // above when argc > 0), valid for the duration of this call.
            let arg = unsafe { *argv.add(i) };
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
        let text = CString::new(text.replace('\0', " ")).map_err(|_| code::PAM_BUF_ERR)?;
        let mut item: *const c_void = ptr::null();
        // SAFETY: live handle and valid out-pointer; libpam owns the item.
        let rc = unsafe { pam_get_item(self.pamh, PAM_CONV, &mut item) };
        if rc != code::PAM_SUCCESS {
            return Err(rc);
        }
        // SAFETY: PAM_CONV is a `struct pam_conv` owned by libpam (or null).
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
            return match style {
                Style::ErrorMsg => Ok(None),
                _ => Err(code::PAM_CONV_ERR),
            };
        }
        // SAFETY: on success the application hands us an array of one
        // malloc'ed response (and malloc'ed `resp` strings), which we must
        // free; we wipe the answer before freeing it.
        unsafe {
            let resp = (*responses).resp;
            let answer = if resp.is_null() {
                None
            } else {
                let answer = bounded_copy(resp);
                let len = libc::strlen(resp);
                std::slice::from_raw_parts_mut(resp.cast::<u8>(), len).zeroize();
                libc::free(resp.cast::<c_void>());
                Some(answer)
            };
            libc::free(responses.cast::<c_void>());
            Ok(answer)
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
