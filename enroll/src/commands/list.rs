//! `list` and `show`: read-only views of the devices.

use super::*;

/// `list`.
pub fn list(ctx: &Ctx) -> Result<()> {
    let file = ctx.store.read()?.devices.unwrap_or_default();
    let now = Timestamp::now();
    if ctx.json {
        for d in &file.devices {
            print_device_json(ctx, d, None, Some(now))?;
        }
        if let Some(set) = &file.backup {
            print_json(&backup_line(ctx, set, now))?;
        }
        return Ok(());
    }
    if file.devices.is_empty() && file.backup.is_none() {
        return print(&format!(
            "{} has no devices ({}).\nAdd one with `totp-enroll add`.\n",
            ctx.user.name, ctx.store
        ));
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "CONFIRMED".into(),
        "ALGORITHM".into(),
        "DIGITS/STEP".into(),
        "LAST USED".into(),
        "DRIFT".into(),
        "STATUS".into(),
    ]];
    for d in &file.devices {
        let s = StateJson::of(d, now, &ctx.settings.policy);
        let status = match (&s.throttled_until, d.throttling_failure_count) {
            (Some(until), n) => format!("throttled until {until} ({n} failures)"),
            (None, 0) => "ok".into(),
            (None, 1) => "1 failure".into(),
            (None, n) => format!("{n} failures"),
        };
        rows.push([
            d.name.clone(),
            if d.confirmed { "yes" } else { "no" }.into(),
            d.algorithm.name().into(),
            format!("{}/{}s", d.digits, d.step),
            d.last_used_at
                .map_or_else(|| "never".into(), |t| whole_secs(t).to_string()),
            format!("{:+}", d.drift),
            status,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    if let Some(set) = &file.backup {
        text.push_str(&backup_line(ctx, set, now).sentence());
    }
    print(&text)
}

/// `show NAME`.
pub fn show(ctx: &Ctx, a: &ShowArgs) -> Result<()> {
    let file = read_existing(ctx)?;
    let d = find(ctx, &file, &a.name)?;
    let url = ctx.url(d, &a.url);
    let matrix = Matrix::encode(&url).map_err(Error::Usage)?;
    let images = PendingImages::prepare(ctx, &a.qr, &matrix)?;
    images.commit()?;
    let now = Timestamp::now();
    if ctx.json {
        return print_device_json(ctx, d, Some(&url), Some(now));
    }
    let s = StateJson::of(d, now, &ctx.settings.policy);
    let mut text = format!(
        "Device `{}` of {} ({}):\n  confirmed:     {}\n  parameters:    {}, {} digits, step {} s, t0 {}, tolerance ±{}\n",
        d.name,
        ctx.user.name,
        ctx.store,
        if d.confirmed { "yes" } else { "no: run `totp-enroll confirm`" },
        d.algorithm,
        d.digits,
        d.step,
        d.t0,
        d.tolerance
    );
    text.push_str(&format!(
        "  current step:  {} by the clock, {} expected from the device (drift {:+})\n",
        s.clock_t, s.current_t, d.drift
    ));
    text.push_str(&match d.last_t {
        -1 => "  last_t:        -1 (no code accepted yet)\n".to_owned(),
        t => match s.current_t.saturating_sub(t) {
            0 => format!("  last_t:        {t} (the current step)\n"),
            1 => format!("  last_t:        {t} (1 step before the current one)\n"),
            n if n < 0 => format!(
                "  last_t:        {t} ({} steps after the current one)\n",
                n.unsigned_abs()
            ),
            n => format!("  last_t:        {t} ({n} steps before the current one)\n"),
        },
    });
    text.push_str(&match (d.last_used_at, s.seconds_since_last_use) {
        (Some(t), Some(secs)) => {
            format!("  last used:     {} ({secs} s ago)\n", whole_secs(t))
        }
        _ => "  last used:     never\n".to_owned(),
    });
    text.push_str(&match &s.throttled_until {
        Some(u) => format!(
            "  failures:      {} (throttled until {u}; `totp-enroll reset` clears it)\n",
            d.throttling_failure_count
        ),
        None => format!(
            "  failures:      {} (not throttled)\n",
            d.throttling_failure_count
        ),
    });
    text.push('\n');
    text.push_str(&setup_text(d, &url, &a.qr));
    let retry = format!("totp-enroll show {}", manage::shell_word(&d.name));
    text.push_str(&qr_text(&url, &a.qr, 1, &retry)?);
    print(&text)
}
