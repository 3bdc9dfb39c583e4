//! `confirm NAME`, and the confirmation loop `add` ends with.

use super::*;

/// Wrong codes `add` and `confirm` accept in one run before giving up.
const MAX_WRONG_CODES: u32 = 3;
/// Lines of input read at most while confirming.
const MAX_INPUT_LINES: u32 = 10;
/// Longest throttle wait sat out while confirming; longer ones are refused.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(10);
/// `confirm NAME`.
pub fn confirm(ctx: &Ctx, a: &ConfirmArgs) -> Result<()> {
    let file = read_existing(ctx)?;
    let device = find(ctx, &file, &a.name)?;
    if device.confirmed {
        if ctx.json {
            return print_device_json(ctx, device, None, Some(Timestamp::now()));
        }
        return print(&format!("Device `{}` is confirmed already.\n", a.name));
    }
    let interactive = !ctx.json;
    if interactive {
        print(&format!(
            "Enter the {}-digit code the app shows now for `{}`.\n",
            device.digits, a.name
        ))?;
    }
    let device = confirm_loop(ctx, &a.name, interactive)?;
    if ctx.json {
        // The state, not the secret: confirming is not a setup step.
        print_device_json(ctx, &device, None, Some(Timestamp::now()))?;
    } else {
        print(&format!("Device `{}` is confirmed.\n{ONCE}", a.name))?;
    }
    give_first_set(ctx)
}

/// The last line after a confirmation: the code just typed is used up, and
/// the first login right after would otherwise be refused as a replay.
pub(super) const ONCE: &str = "Each code works once: wait for the next code before you log in.\n";

/// Reads codes from stdin until one confirms the device `name` (under the
/// module's rules), the input ends, or too many are wrong. `--json` (not
/// interactive) takes one code and no prompt.
pub(super) fn confirm_loop(ctx: &Ctx, name: &str, interactive: bool) -> Result<Device> {
    let stdin = io::stdin();
    let prompt = interactive && stdin.is_terminal();
    let max_wrong = if interactive { MAX_WRONG_CODES } else { 1 };
    let mut wrong = 0;
    let mut lines = 0;
    let unconfirmed = |why: &str| {
        Error::Refused(format!(
            "{why}; device `{name}` stays unconfirmed: run `totp-enroll confirm {}` to try again",
            manage::shell_word(name)
        ))
    };
    let mut retry: Option<Answer> = None;
    loop {
        let code = match retry.take() {
            Some(c) => c,
            None => {
                if lines >= MAX_INPUT_LINES {
                    return Err(unconfirmed("no valid code entered"));
                }
                lines += 1;
                if prompt {
                    let mut err = io::stderr().lock();
                    let _ = write!(err, "Code: ");
                    let _ = err.flush();
                }
                match read_line(&stdin)? {
                    None => return Err(unconfirmed("no code entered")),
                    Some(c) if c.expose().trim().is_empty() => continue,
                    Some(c) => c,
                }
            }
        };
        match manage::confirm(&ctx.store, name, code.expose(), &ctx.settings.policy)? {
            Confirmation::Confirmed(d) => return Ok(d),
            Confirmation::Rejected(reason) => {
                wrong += 1;
                let what = match reason {
                    Rejection::Replayed => "that code was used already",
                    Rejection::Malformed => "that is not a code of the right length",
                    Rejection::Wrong => "wrong code",
                };
                if wrong >= max_wrong {
                    return Err(unconfirmed(what));
                }
                note(&format!("{what}; enter the code the app shows now."));
            }
            Confirmation::Throttled { until, now } => {
                let wait =
                    Duration::from_micros(u64::try_from(until.micros_since(now)).unwrap_or(0));
                if wait > MAX_THROTTLE_WAIT {
                    return Err(unconfirmed(&format!(
                        "too many wrong codes: codes are refused until {until} (root can \
                         `totp-enroll reset`)"
                    )));
                }
                note(&format!(
                    "too many wrong codes: waiting {} s before checking this one",
                    wait.as_secs() + 1
                ));
                std::thread::sleep(wait + Duration::from_millis(50));
                retry = Some(code);
            }
        }
    }
}
