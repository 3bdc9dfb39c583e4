//! `totp-enroll`: create and administer the TOTP devices `pam_totp.so`
//! accepts.
//!
//! A thin edge over the `shared` crate: it parses arguments, talks to the
//! person at the terminal (secret, `otpauth://` URL, QR code, confirmation
//! code) and calls `shared` for everything else — the device file format,
//! the verification rules used to confirm a device, the safe store and the
//! privilege switch when root writes into a user's home. It holds no rule of
//! its own, so it can never disagree with the module.
//!
//! Exit status: 0 done, 1 refused or failed, 2 usage or configuration error;
//! every error is one line on stderr.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod completion;
mod context;
mod error;
mod google;
mod output;
mod qr;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, Shell};
use crate::context::Ctx;
use crate::error::{Error, Result};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`totp-enroll list | head -1`) is
        // not a failure of ours: everything it wanted was written.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "totp-enroll: {}", output::for_user(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go to stdout with status 0; a usage error is clap's
/// whole text on stderr (what is missing or wrong, the usage line, and any
/// "tip"), with status 2.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if left_out_png(e) {
        let _ = writeln!(std::io::stderr().lock(), "totp-enroll: {}", qr::NO_PNG);
        return ExitCode::from(2);
    }
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    }
}

/// `--qr-png` given to a build without the `png` cargo feature, which has no
/// such option (help and completions do not offer it): refused with a line
/// that says why and names `--qr-svg`, rather than clap's "unexpected
/// argument", before anything is read or written.
fn left_out_png(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    !cfg!(feature = "png")
        && e.kind() == ErrorKind::UnknownArgument
        && matches!(
            e.get(ContextKind::InvalidArg),
            Some(ContextValue::String(arg))
                if arg == "--qr-png" || arg.starts_with("--qr-png=")
        )
}

fn run(cli: Cli) -> Result<()> {
    // `add`'s flags are accepted without a command (add is the default);
    // with another command they would be silently ignored.
    if cli.command.is_some() && cli.add != cli::AddArgs::default() {
        return Err(Error::Usage(
            "the flags of `add` go after `add` (or with no command); put the others after their command"
                .into(),
        ));
    }
    let command = cli.command.unwrap_or(Command::Add(cli.add));
    match command {
        Command::Completions(a) => completions(a.shell),
        Command::Batch(a) => commands::batch(&cli.common, &a),
        Command::Db(c) => commands::db(&cli.common, c),
        command => {
            let ctx = Ctx::new(&cli.common)?;
            match command {
                Command::Add(a) => commands::add(&ctx, &a),
                Command::Confirm(a) => commands::confirm(&ctx, &a),
                Command::List => commands::list(&ctx),
                Command::Show(a) => commands::show(&ctx, &a),
                Command::Remove(a) => commands::remove(&ctx, &a),
                Command::Check(a) => commands::check(&ctx, &a),
                Command::Set(a) => commands::set(&ctx, &a),
                Command::Reset(a) => commands::reset(&ctx, &a),
                Command::ImportGoogleAuthenticator(a) => commands::import_google(&ctx, &a),
                Command::BackupCodes(a) => commands::backup_codes(&ctx, &a),
                Command::Batch(_) | Command::Completions(_) | Command::Db(_) => Ok(()),
            }
        }
    }
}

fn completions(shell: Shell) -> Result<()> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "totp-enroll", &mut out);
    let text = String::from_utf8_lossy(&out);
    let text = match shell {
        clap_complete::Shell::Bash => completion::fix_bash(&text),
        _ => text.into_owned(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).map_err(Error::Output)?;
    Ok(())
}
