//! Is the named AWS profile there? The SDK's answer to a missing profile is "the credential
//! provider was not enabled"; this says which profile is missing and which files were read.

use std::path::PathBuf;

use crate::exit::Failure;

/// The shared config and credentials files, as the AWS CLI and SDKs find them.
fn files() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(default))
    };
    vec![
        pick("AWS_CONFIG_FILE", ".aws/config"),
        pick("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
    ]
}

/// The profile names a file defines: `[profile NAME]` and `[default]` in the config file,
/// `[NAME]` in the credentials file.
pub fn profiles_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix('[')?.strip_suffix(']')?.trim();
            let name = inner.strip_prefix("profile ").unwrap_or(inner).trim();
            (!name.is_empty() && !name.starts_with("sso-session") && !name.starts_with("services "))
                .then(|| name.to_string())
        })
        .collect()
}

/// A usage error when `profile` is in none of the files, naming the files and the profiles
/// that exist.
pub fn ensure_exists(profile: &str, from: &str) -> Result<(), Failure> {
    let mut read = Vec::new();
    let mut found = Vec::new();
    for path in files() {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                read.push(path.display().to_string());
                found.extend(profiles_in(&text));
            }
            Err(_) => read.push(format!("{} (not found)", path.display())),
        }
    }
    if found.iter().any(|p| p == profile) {
        return Ok(());
    }
    found.sort();
    found.dedup();
    let known = if found.is_empty() {
        "no profiles are defined there".to_string()
    } else {
        format!("profiles there: {}", found.join(", "))
    };
    Err(Failure::usage(format!(
        "AWS profile \"{profile}\" ({from}) is not in the AWS config files read: {}; {known}",
        read.join(", ")
    ))
    .hint(format!(
        "create it (`aws configure sso --profile {profile}` or `aws configure --profile {profile}`), or name one that exists; without a profile the standard chain is used (environment, web identity, instance role)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profile_names_from_both_file_kinds() {
        let config =
            "[default]\nregion = us-east-1\n[profile prod]\nsso_session = x\n[sso-session x]\n";
        assert_eq!(profiles_in(config), vec!["default", "prod"]);
        assert_eq!(profiles_in("[ci]\naws_access_key_id = A\n"), vec!["ci"]);
    }
}
