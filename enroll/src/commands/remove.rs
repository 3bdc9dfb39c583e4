//! `remove NAME` and `reset NAME`.

use super::*;

/// `remove NAME`.
pub fn remove(ctx: &Ctx, a: &NameArg) -> Result<()> {
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
    print(&format!(
        "Device `{}` of {}: {before} failures cleared, no longer throttled.\n",
        a.name, ctx.user.name
    ))
}
