//! The C side of PAM, declared by hand from Linux-PAM's headers
//! (`<security/_pam_types.h>`, `<security/pam_modules.h>`,
//! `<security/pam_ext.h>`): the `#[repr(C)]` structs, the libpam functions
//! the module calls, and the constants — item types, message styles, flags,
//! conversation limits and every return code.
//!
//! What it is not: code. Nothing here calls anything, checks a pointer or
//! owns memory; every call into libpam, with its `SAFETY` reason, is in
//! `ffi`. Nor is it a general binding: only the functions the module uses
//! are declared. No bindings crate (`pam-sys`, bindgen): these few
//! declarations are the whole surface the module needs, and a test checks
//! every constant against the headers wherever they are installed.
//!
//! The constants are the whole table of the headers, used or not, so that a
//! new call site picks a name from here rather than a bare number.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void};

/// libpam's opaque `pam_handle_t`: only ever behind a pointer.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

/// `struct pam_message`: one message of a conversation.
#[repr(C)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`: one answer of a conversation, `malloc`ed by the
/// application and freed by the module.
#[repr(C)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// The application's conversation function (`pam_conv(3)`).
pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`: the `PAM_CONV` item.
#[repr(C)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

/// The cleanup function of a `pam_set_data` item: called by libpam with the
/// data when the item is replaced (`PAM_DATA_REPLACE`) or at `pam_end`.
pub type CleanupFn =
    unsafe extern "C" fn(pamh: *mut PamHandle, data: *mut c_void, error_status: c_int);

// SAFETY: each signature is the one of the Linux-PAM header named above it;
// the return codes are `c_int` and the pointers keep the header's constness.
#[link(name = "pam")]
unsafe extern "C" {
    // <security/pam_modules.h>
    pub fn pam_get_user(
        pamh: *mut PamHandle,
        user: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    // <security/pam_modules.h>
    pub fn pam_set_data(
        pamh: *mut PamHandle,
        module_data_name: *const c_char,
        data: *mut c_void,
        cleanup: Option<CleanupFn>,
    ) -> c_int;
    // <security/pam_modules.h>
    pub fn pam_get_data(
        pamh: *const PamHandle,
        module_data_name: *const c_char,
        data: *mut *const c_void,
    ) -> c_int;
    // <security/_pam_types.h>
    pub fn pam_get_item(
        pamh: *const PamHandle,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;
    // <security/_pam_types.h>
    pub fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    // <security/pam_ext.h>. Variadic: only ever called with the format "%s"
    // and one C string.
    pub fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

// Item types of pam_get_item / pam_set_item (<security/_pam_types.h>).

/// The service name.
pub const PAM_SERVICE: c_int = 1;
/// The user name.
pub const PAM_USER: c_int = 2;
/// The terminal name.
pub const PAM_TTY: c_int = 3;
/// The remote host name.
pub const PAM_RHOST: c_int = 4;
/// The application's `struct pam_conv`.
pub const PAM_CONV: c_int = 5;
/// The authentication token (password).
pub const PAM_AUTHTOK: c_int = 6;
/// The old authentication token.
pub const PAM_OLDAUTHTOK: c_int = 7;
/// The remote user name.
pub const PAM_RUSER: c_int = 8;
/// The prompt for the user name.
pub const PAM_USER_PROMPT: c_int = 9;
/// The application's function to override the failure delay.
pub const PAM_FAIL_DELAY: c_int = 10;
/// The X display name.
pub const PAM_XDISPLAY: c_int = 11;
/// The X server authentication data.
pub const PAM_XAUTHDATA: c_int = 12;
/// The type of token `pam_get_authtok` asks for.
pub const PAM_AUTHTOK_TYPE: c_int = 13;

// Message styles of `struct pam_message` (<security/_pam_types.h>).

/// A prompt whose answer is not echoed (a password, a code).
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
/// A prompt whose answer is echoed.
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
/// An error message; no answer.
pub const PAM_ERROR_MSG: c_int = 3;
/// An informational message; no answer.
pub const PAM_TEXT_INFO: c_int = 4;
/// A yes/no/maybe question (Linux-PAM extension).
pub const PAM_RADIO_TYPE: c_int = 5;
/// A binary prompt (Linux-PAM extension).
pub const PAM_BINARY_PROMPT: c_int = 7;

// Conversation limits (<security/_pam_types.h>).

/// The most messages in one conversation call.
pub const PAM_MAX_NUM_MSG: usize = 32;
/// The longest message, NUL included.
pub const PAM_MAX_MSG_SIZE: usize = 512;
/// The longest response, NUL included.
pub const PAM_MAX_RESP_SIZE: usize = 512;

// Flags passed to the pam_sm_* hooks (<security/_pam_types.h>,
// <security/pam_modules.h>). The headers spell them unsigned; the hooks
// receive them in an `int`.

/// The module is not to generate any messages.
pub const PAM_SILENT: c_int = 0x8000;
/// Authentication: fail if the token is empty.
pub const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
/// `pam_setcred`: establish the credentials.
pub const PAM_ESTABLISH_CRED: c_int = 0x0002;
/// `pam_setcred`: delete the credentials.
pub const PAM_DELETE_CRED: c_int = 0x0004;
/// `pam_setcred`: reinitialize the credentials.
pub const PAM_REINITIALIZE_CRED: c_int = 0x0008;
/// `pam_setcred`: extend the lifetime of the credentials.
pub const PAM_REFRESH_CRED: c_int = 0x0010;
/// `pam_chauthtok`: change only expired tokens.
pub const PAM_CHANGE_EXPIRED_AUTHTOK: c_int = 0x0020;
/// `pam_chauthtok`: first pass, check only.
pub const PAM_PRELIM_CHECK: c_int = 0x4000;
/// `pam_chauthtok`: second pass, change the token.
pub const PAM_UPDATE_AUTHTOK: c_int = 0x2000;

// Bits or'ed into the `error_status` of a pam_set_data cleanup function
// (<security/_pam_types.h>, <security/pam_modules.h>).

/// The cleanup is not to generate any messages.
pub const PAM_DATA_SILENT: c_int = 0x4000_0000;
/// The item is being replaced by a new pam_set_data, not freed at pam_end.
pub const PAM_DATA_REPLACE: c_int = 0x2000_0000;

/// Every PAM return code, from `<security/_pam_types.h>`; the docs of those
/// the module gives say when it gives them.
pub mod code {
    use std::ffi::c_int;

    /// Authenticated.
    pub const PAM_SUCCESS: c_int = 0;
    /// dlopen() of a module failed (libpam's own).
    pub const PAM_OPEN_ERR: c_int = 1;
    /// A symbol was not found in a module (libpam's own).
    pub const PAM_SYMBOL_ERR: c_int = 2;
    /// Bad module argument or configuration.
    pub const PAM_SERVICE_ERR: c_int = 3;
    /// System error (a broken handle from libpam).
    pub const PAM_SYSTEM_ERR: c_int = 4;
    /// Out of memory (a message that cannot become a C string).
    pub const PAM_BUF_ERR: c_int = 5;
    /// Permission denied.
    pub const PAM_PERM_DENIED: c_int = 6;
    /// Refused.
    pub const PAM_AUTH_ERR: c_int = 7;
    /// The authentication data cannot be accessed.
    pub const PAM_CRED_INSUFFICIENT: c_int = 8;
    /// The device file (or password database) cannot be used.
    pub const PAM_AUTHINFO_UNAVAIL: c_int = 9;
    /// No such user.
    pub const PAM_USER_UNKNOWN: c_int = 10;
    /// Throttled: too many failures.
    pub const PAM_MAXTRIES: c_int = 11;
    /// A new password is needed: a `required` line counts it as ok, so the
    /// module never returns it.
    pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
    /// The account has expired.
    pub const PAM_ACCT_EXPIRED: c_int = 13;
    /// A session entry cannot be made or removed.
    pub const PAM_SESSION_ERR: c_int = 14;
    /// The credentials cannot be retrieved.
    pub const PAM_CRED_UNAVAIL: c_int = 15;
    /// The credentials have expired.
    pub const PAM_CRED_EXPIRED: c_int = 16;
    /// The credentials cannot be set.
    pub const PAM_CRED_ERR: c_int = 17;
    /// No module data under that name (`pam_get_data`).
    pub const PAM_NO_MODULE_DATA: c_int = 18;
    /// The conversation failed.
    pub const PAM_CONV_ERR: c_int = 19;
    /// The token cannot be changed.
    pub const PAM_AUTHTOK_ERR: c_int = 20;
    /// The token information cannot be recovered.
    pub const PAM_AUTHTOK_RECOVERY_ERR: c_int = 21;
    /// The token is locked.
    pub const PAM_AUTHTOK_LOCK_BUSY: c_int = 22;
    /// Token aging is disabled.
    pub const PAM_AUTHTOK_DISABLE_AGING: c_int = 23;
    /// The preliminary check of a token change failed.
    pub const PAM_TRY_AGAIN: c_int = 24;
    /// Not this module's business (no device with `nullok`; other hooks).
    pub const PAM_IGNORE: c_int = 25;
    /// Critical error: the stack is to stop now.
    pub const PAM_ABORT: c_int = 26;
    /// The token has expired.
    pub const PAM_AUTHTOK_EXPIRED: c_int = 27;
    /// The module is not known.
    pub const PAM_MODULE_UNKNOWN: c_int = 28;
    /// A bad item passed to pam_get_item / pam_set_item.
    pub const PAM_BAD_ITEM: c_int = 29;
    /// An event-driven conversation has no data yet.
    pub const PAM_CONV_AGAIN: c_int = 30;
    /// The highest PAM return code (the stack is to be resumed later).
    pub const PAM_INCOMPLETE: c_int = 31;
}

#[cfg(test)]
mod tests {
    use super::code::*;
    use super::*;

    /// `(name, value)` of each constant, the name written once.
    macro_rules! named {
        ($($name:ident),* $(,)?) => {
            [$((stringify!($name), $name as i64)),*]
        };
    }

    /// Every return code, in the header's order.
    const RETURN_CODES: [c_int; 32] = [
        PAM_SUCCESS,
        PAM_OPEN_ERR,
        PAM_SYMBOL_ERR,
        PAM_SERVICE_ERR,
        PAM_SYSTEM_ERR,
        PAM_BUF_ERR,
        PAM_PERM_DENIED,
        PAM_AUTH_ERR,
        PAM_CRED_INSUFFICIENT,
        PAM_AUTHINFO_UNAVAIL,
        PAM_USER_UNKNOWN,
        PAM_MAXTRIES,
        PAM_NEW_AUTHTOK_REQD,
        PAM_ACCT_EXPIRED,
        PAM_SESSION_ERR,
        PAM_CRED_UNAVAIL,
        PAM_CRED_EXPIRED,
        PAM_CRED_ERR,
        PAM_NO_MODULE_DATA,
        PAM_CONV_ERR,
        PAM_AUTHTOK_ERR,
        PAM_AUTHTOK_RECOVERY_ERR,
        PAM_AUTHTOK_LOCK_BUSY,
        PAM_AUTHTOK_DISABLE_AGING,
        PAM_TRY_AGAIN,
        PAM_IGNORE,
        PAM_ABORT,
        PAM_AUTHTOK_EXPIRED,
        PAM_MODULE_UNKNOWN,
        PAM_BAD_ITEM,
        PAM_CONV_AGAIN,
        PAM_INCOMPLETE,
    ];

    #[test]
    fn the_return_codes_are_zero_to_thirty_one_without_a_gap() {
        for (expected, code) in (0..).zip(RETURN_CODES) {
            assert_eq!(code, expected);
        }
    }

    /// Each constant against its `#define` in the installed headers, when
    /// they are installed (libpam0g-dev / pam-devel); the build never needs
    /// them, so without them there is nothing to compare.
    #[test]
    fn every_constant_matches_the_installed_headers() {
        let mut headers = String::new();
        for name in ["_pam_types.h", "pam_modules.h"] {
            if let Ok(text) = std::fs::read_to_string(format!("/usr/include/security/{name}")) {
                headers.push_str(&text);
            }
        }
        if headers.is_empty() {
            eprintln!("no PAM headers in /usr/include/security: nothing to compare");
            return;
        }
        let defined = |name: &str| -> Option<i64> {
            headers.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                if words.next() != Some("#define") || words.next() != Some(name) {
                    return None;
                }
                let value = words.next()?.trim_end_matches('U');
                match value.strip_prefix("0x") {
                    Some(hex) => i64::from_str_radix(hex, 16).ok(),
                    None => value.parse().ok(),
                }
            })
        };
        let limits = named![PAM_MAX_NUM_MSG, PAM_MAX_MSG_SIZE, PAM_MAX_RESP_SIZE];
        let ints = named![
            PAM_SERVICE,
            PAM_USER,
            PAM_TTY,
            PAM_RHOST,
            PAM_CONV,
            PAM_AUTHTOK,
            PAM_OLDAUTHTOK,
            PAM_RUSER,
            PAM_USER_PROMPT,
            PAM_FAIL_DELAY,
            PAM_XDISPLAY,
            PAM_XAUTHDATA,
            PAM_AUTHTOK_TYPE,
            PAM_PROMPT_ECHO_OFF,
            PAM_PROMPT_ECHO_ON,
            PAM_ERROR_MSG,
            PAM_TEXT_INFO,
            PAM_RADIO_TYPE,
            PAM_BINARY_PROMPT,
            PAM_SILENT,
            PAM_DISALLOW_NULL_AUTHTOK,
            PAM_ESTABLISH_CRED,
            PAM_DELETE_CRED,
            PAM_REINITIALIZE_CRED,
            PAM_REFRESH_CRED,
            PAM_CHANGE_EXPIRED_AUTHTOK,
            PAM_PRELIM_CHECK,
            PAM_UPDATE_AUTHTOK,
            PAM_DATA_SILENT,
            PAM_DATA_REPLACE,
            PAM_SUCCESS,
            PAM_OPEN_ERR,
            PAM_SYMBOL_ERR,
            PAM_SERVICE_ERR,
            PAM_SYSTEM_ERR,
            PAM_BUF_ERR,
            PAM_PERM_DENIED,
            PAM_AUTH_ERR,
            PAM_CRED_INSUFFICIENT,
            PAM_AUTHINFO_UNAVAIL,
            PAM_USER_UNKNOWN,
            PAM_MAXTRIES,
            PAM_NEW_AUTHTOK_REQD,
            PAM_ACCT_EXPIRED,
            PAM_SESSION_ERR,
            PAM_CRED_UNAVAIL,
            PAM_CRED_EXPIRED,
            PAM_CRED_ERR,
            PAM_NO_MODULE_DATA,
            PAM_CONV_ERR,
            PAM_AUTHTOK_ERR,
            PAM_AUTHTOK_RECOVERY_ERR,
            PAM_AUTHTOK_LOCK_BUSY,
            PAM_AUTHTOK_DISABLE_AGING,
            PAM_TRY_AGAIN,
            PAM_IGNORE,
            PAM_ABORT,
            PAM_AUTHTOK_EXPIRED,
            PAM_MODULE_UNKNOWN,
            PAM_BAD_ITEM,
            PAM_CONV_AGAIN,
            PAM_INCOMPLETE,
        ];
        for (name, value) in limits.into_iter().chain(ints) {
            assert_eq!(defined(name), Some(value), "{name}");
        }
    }
}
