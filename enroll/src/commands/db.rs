//! `db init`: create or upgrade the pam-totp layout's tables in the
//! PostgreSQL store the settings name. The SQL and the refusal for the
//! django-otp layout are shared's (`PgStore::init_schema`).

use posix::unistd::geteuid;
use shared::config::StoreSettings;
use shared::store::PgStore;

use crate::cli::{Common, DbCommand};
use crate::context::load_settings;
use crate::error::{Error, Result};
use crate::output::{print, print_json};

/// `db init`.
pub fn db(common: &Common, command: DbCommand) -> Result<()> {
    let DbCommand::Init = command;
    if !geteuid().is_root() {
        return Err(Error::Refused(
            "only root may create the store's tables; run `sudo totp-enroll db init`".into(),
        ));
    }
    if common.user.is_some() || common.path.is_some() {
        return Err(Error::Usage(
            "`db init` acts on the database, not on a user or a device file; drop --user/--path"
                .into(),
        ));
    }
    let settings = load_settings(common.config.as_deref())?;
    let StoreSettings::Postgresql(pg) = &settings.store else {
        return Err(Error::Usage(
            "`db init` needs [store] backend = \"postgresql\" in the settings".into(),
        ));
    };
    PgStore::new(pg, "").init_schema()?;
    if common.json {
        #[derive(serde::Serialize)]
        struct Done {
            table: &'static str,
            ready: bool,
        }
        return print_json(&Done {
            table: "pam_totp_device",
            ready: true,
        });
    }
    print("Table pam_totp_device is ready (created or already up to date).\n")
}
