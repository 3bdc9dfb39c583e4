//! Repairs and extends clap_complete's bash script.
//!
//! Newer clap_complete 4.5 releases name the functions' `case` labels of a
//! hyphenated command (`totp-enroll`) differently from the values they
//! assign (`totp__subcmd__enroll__subcmd__add` against
//! `totp__enroll__subcmd__add`, clap issue #6421), so no subcommand's
//! options ever complete. The labels are renamed to the assigned form here.
//! Older ones (4.5.40, the one Debian 13 packages) have neither the bug nor
//! the `__subcmd__` names (`totp__enroll__add`); both shapes are handled.
//! Then the commands that take a device name complete the names the user
//! has (`totp-enroll list --json`, with the `--user`, `--path` and
//! `--config` already on the line).

/// Commands whose positional argument is a device name.
const NAMED: &[&str] = &["confirm", "show", "remove", "reset", "check", "set"];

/// The helper that lists device names for the words on the line.
const DEVICES_FN: &str = r#"
# Device names for the --user/--path/--config given on the line (pam-totp).
_totp_enroll_devices() {
    local i w args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case "$w" in
            --user|-u|--path|--config)
                args+=("$w" "${COMP_WORDS[i+1]}")
                ;;
        esac
    done
    "${COMP_WORDS[0]}" "${args[@]}" list --json 2>/dev/null |
        sed -n 's/.*"device_name":"\([^"\\]*\)".*/\1/p'
}
"#;

/// The fixed script (see the module docs). A script without the expected
/// shape is returned as it came, with the helper appended unused.
pub fn fix_bash(script: &str) -> String {
    let mut text = script.replace("totp__subcmd__enroll__", "totp__enroll__");
    for name in NAMED {
        let start = [
            format!("        totp__enroll__subcmd__{name})\n"),
            format!("        totp__enroll__{name})\n"),
        ]
        .iter()
        .find_map(|label| text.find(label));
        let Some(start) = start else {
            continue;
        };
        let opts_end = text[start..]
            .find("\n            if [[ ${cur} == -*")
            .map(|i| start + i + 1);
        if let Some(at) = opts_end {
            text.insert_str(
                at,
                "            case \"${prev}\" in\n\
                 \x20               --user|-u|--path|--config|--tolerance|--name|-n) ;;\n\
                 \x20               *)\n\
                 \x20                   if [[ ${cur} != -* ]]; then\n\
                 \x20                       COMPREPLY=( $(compgen -W \"$(_totp_enroll_devices)\" -- \"${cur}\") )\n\
                 \x20                       [[ ${#COMPREPLY[@]} -gt 0 ]] && return 0\n\
                 \x20                   fi\n\
                 \x20                   ;;\n\
                 \x20           esac\n",
            );
        }
    }
    text.push_str(DEVICES_FN);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_labels_are_renamed_to_the_values_clap_assigns() {
        let fixed = fix_bash(
            "cmd=\"totp__enroll__subcmd__remove\"\n        totp__subcmd__enroll__subcmd__remove)\n            opts=\"-h\"\n            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then\n",
        );
        assert!(!fixed.contains("totp__subcmd__enroll"), "{fixed}");
        assert!(fixed.contains("_totp_enroll_devices)\" -- "), "{fixed}");
    }

    #[test]
    fn device_names_complete_with_the_labels_of_older_clap_complete_too() {
        let fixed = fix_bash(
            "cmd=\"totp__enroll__remove\"\n        totp__enroll__remove)\n            opts=\"-h\"\n            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then\n",
        );
        assert!(fixed.contains("_totp_enroll_devices)\" -- "), "{fixed}");
    }
}
