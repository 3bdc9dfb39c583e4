//! `remove NAME` and `reset NAME`.

use super::*;

/// `remove NAME`: asks first when it is the user's last confirmed device.
pub fn remove(ctx: &Ctx, a: &RemoveArgs) -> Result<()> {
    let file = read_existing(ctx)?;
    let device = find(ctx, &file, &a.name)?;
    let last = device.confirmed && file.devices.iter().filter(|d| d.confirmed).count() == 1;
    if last && !a.yes {
        ask_to_remove_last(ctx, &a.name)?;
    }
    manage::remove(&ctx.store, &a.name)?;
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Removed<'a> {
            user: &'a str,
            device_name: &'a str,
            removed: bool,
        }
        return print_json(&Removed {
            user: &ctx.user.name,
            device_name: &a.name,
            removed: true,
        });
    }
    print(&format!(
        "Removed device `{}` of {}.\n",
        a.name, ctx.user.name
    ))
}

/// `reset NAME`: failure count 0, failure timestamp cleared.
pub fn reset(ctx: &Ctx, a: &NameArg) -> Result<()> {
    let (device, before) = manage::reset(&ctx.store, &a.name)?;
    if ctx.json {
        return print_device_json(ctx, &device, None, Some(Timestamp::now()));
    }
    let cleared = match before {
        0 => "no failures to clear".to_owned(),
        1 => "1 failure cleared".to_owned(),
        n => format!("{n} failures cleared"),
    };
    print(&format!(
        "Device `{}` of {}: {cleared}, not throttled.\n",
        a.name, ctx.user.name
    ))
}

/// The question before removing the last confirmed device; refused when
/// nobody can answer (`--json`, or stdin is not a terminal) without `--yes`.
fn ask_to_remove_last(ctx: &Ctx, name: &str) -> Result<()> {
    let consequence = format!(
        "`{name}` is the last confirmed device of {}: without it, logins that ask for a \
         code are refused (or, with `nullok`, no longer ask for one)",
        ctx.user.name
    );
    let stdin = io::stdin();
    if ctx.json || !stdin.is_terminal() {
        return Err(Error::Refused(format!(
            "{consequence}; add --yes to remove it anyway"
        )));
    }
    {
        let mut err = io::stderr().lock();
        let _ = write!(err, "{consequence}.\nRemove it? [y/N] ");
        let _ = err.flush();
    }
    let answer = read_line(&stdin)?;
    let yes =
        answer.is_some_and(|a| matches!(a.expose().trim(), "y" | "Y" | "yes" | "YES" | "Yes"));
    if yes {
        Ok(())
    } else {
        Err(Error::Refused(format!("`{name}` kept")))
    }
}
