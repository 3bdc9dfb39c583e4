//! `check NAME` and `set NAME`: diagnosis and small changes of a device.

use super::*;

use shared::manage::Settable;
use shared::verify::SKEW_STEPS;

/// `check NAME`: which step a code belongs to; nothing recorded.
pub fn check(ctx: &Ctx, a: &NameArg) -> Result<()> {
    let file = read_existing(ctx)?;
    let device = find(ctx, &file, &a.name)?;
    let stdin = io::stdin();
    if !ctx.json && stdin.is_terminal() {
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "Enter the {}-digit code the app shows now for `{}`: ",
            device.digits, a.name
        );
        let _ = err.flush();
    }
    let code = read_line(&stdin)?
        .ok_or_else(|| Error::Usage("no code entered: type one, or pipe it to stdin".into()))?;
    let reach = device.tolerance.saturating_add(SKEW_STEPS);
    let checked = manage::check(&ctx.store, &a.name, code.expose(), reach)?;
    let d = &checked.device;
    let throttled = shared::verify::throttled_until(d, checked.now, &ctx.settings.policy);
    let accepted = checked.found.is_some_and(|f| f.in_window(d) && !f.used(d))
        && d.confirmed
        && throttled.is_none();
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Checked<'a> {
            user: &'a str,
            device_name: &'a str,
            matched: bool,
            offset: Option<i64>,
            clock_offset_seconds: Option<i64>,
            in_window: bool,
            used: bool,
            would_be_accepted: bool,
        }
        print_json(&Checked {
            user: &ctx.user.name,
            device_name: &d.name,
            matched: checked.found.is_some(),
            offset: checked.found.map(|f| f.offset),
            clock_offset_seconds: checked.found.map(|f| f.clock_secs(d)),
            in_window: checked.found.is_some_and(|f| f.in_window(d)),
            used: checked.found.is_some_and(|f| f.used(d)),
            would_be_accepted: accepted,
        })?;
    } else {
        let mut text = match checked.found {
            None => format!(
                "The code matches no time step within ±{reach} of now for `{}`: a wrong \
                 code, another device's code, or a clock off by more than {} s.\n",
                d.name,
                i64::from(reach) * i64::from(d.step)
            ),
            Some(f) => {
                let verdict = if f.used(d) {
                    "it was used already (a login or confirmation took this step or a later \
                     one), so it would be refused as a replay: each code works once"
                        .to_owned()
                } else if f.in_window(d) {
                    format!(
                        "within the tolerance ±{}: a login would accept it",
                        d.tolerance
                    )
                } else {
                    format!(
                        "outside the tolerance ±{}: a login would refuse it. Set the phone's \
                         clock to automatic time, or widen the window with `totp-enroll set {} \
                         --tolerance {}`",
                        d.tolerance,
                        manage::shell_word(&d.name),
                        f.offset.unsigned_abs().min(10)
                    )
                };
                format!("{} ({verdict}).\n", capitalised(&f.describe(d)))
            }
        };
        if !d.confirmed {
            text.push_str("The device is not confirmed: logins do not use it yet.\n");
        }
        if let Some(until) = throttled {
            text.push_str(&format!(
                "The device is throttled until {until}: a login now is refused whatever the \
                 code (`totp-enroll reset` clears it).\n"
            ));
        }
        text.push_str("Nothing was recorded: the code was not used up and no failure counted.\n");
        print(&text)?;
    }
    if accepted {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "a login would not accept this code for `{}` now",
            d.name
        )))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `set NAME --tolerance N --name NEW`.
pub fn set(ctx: &Ctx, a: &SetArgs) -> Result<()> {
    let change = Settable {
        tolerance: a.tolerance,
        name: a.new_name.clone(),
    };
    let d = manage::set(&ctx.store, &a.name, &change)?;
    if ctx.json {
        return print_device_json(ctx, &d, None, Some(Timestamp::now()));
    }
    let mut what = Vec::new();
    if a.new_name.is_some() && d.name != a.name {
        what.push(format!("renamed to `{}`", d.name));
    }
    if a.tolerance.is_some() {
        what.push(format!("tolerance ±{}", d.tolerance));
    }
    if what.is_empty() {
        what.push("unchanged".to_owned());
    }
    print(&format!(
        "Device `{}` of {}: {}.\n",
        a.name,
        ctx.user.name,
        what.join(", ")
    ))
}
