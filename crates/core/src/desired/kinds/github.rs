//! GitHub kinds: Actions secrets and variables, environment secrets, deploy keys.

use super::{Export, KindInfo, KindRules, Replacement, exact, lower, plain, secret, upper};
use crate::block;
use crate::desired::values::{Duration, GhEnvironment, GhName, Repository, Secret};

block! {
    /// A repository's Actions secret.
    pub struct ActionsSecret {
        /// Repository, `owner/name`.
        repository: Repository => replace,
        /// Secret name; GitHub stores it upper-case.
        name: GhName => replace,
        /// The value: env, file, or a reference to a secret output.
        value: Secret => update,
    }
}

impl KindInfo for ActionsSecret {
    const DOC: &'static str = "A repository Actions secret, sealed with the repository's public key. Values are write-only: drift is a changed fingerprint or an `updated_at` newer than provisioner's last write.";
    const EXPORTS: &'static [Export] =
        &[plain("name", "the name as GitHub stores it (upper-case)")];
    const RULES: KindRules = KindRules {
        key: &[lower("repository"), upper("name")],
        ignore_case: &["repository", "name"],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!(
            "actions secret {} in {}",
            self.name.as_str().to_ascii_uppercase(),
            self.repository.as_str().to_ascii_lowercase()
        ))
    }
}

block! {
    /// An environment's Actions secret.
    pub struct EnvironmentSecret {
        /// Repository, `owner/name`.
        repository: Repository => replace,
        /// Environment name (it must exist).
        environment: GhEnvironment => replace,
        /// Secret name; GitHub stores it upper-case.
        name: GhName => replace,
        /// The value: env, file, or a reference to a secret output.
        value: Secret => update,
    }
}

impl KindInfo for EnvironmentSecret {
    const DOC: &'static str = "An Actions secret of one deployment environment, sealed with the environment's public key.";
    const EXPORTS: &'static [Export] =
        &[plain("name", "the name as GitHub stores it (upper-case)")];
    const RULES: KindRules = KindRules {
        key: &[lower("repository"), exact("environment"), upper("name")],
        ignore_case: &["repository", "environment", "name"],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!(
            "environment secret {} in {}/{}",
            self.name.as_str().to_ascii_uppercase(),
            self.repository.as_str().to_ascii_lowercase(),
            self.environment.as_str()
        ))
    }
}

block! {
    /// An Actions variable (readable, not secret).
    pub struct ActionsVariable {
        /// Repository, `owner/name`.
        repository: Repository => replace,
        /// Environment, for an environment variable; the repository's when left out.
        environment: Option<GhEnvironment> => replace,
        /// Variable name; GitHub stores it upper-case.
        name: GhName => replace,
        /// The value (visible to anyone who can read the repository settings).
        value: String => update,
    }
}

impl KindInfo for ActionsVariable {
    const DOC: &'static str = "An Actions variable. Values are readable, so they are compared field by field. Never put a secret here: references to secret outputs are rejected.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the name as GitHub stores it (upper-case)"),
        plain("value", "the value"),
    ];
    const RULES: KindRules = KindRules {
        key: &[lower("repository"), exact("environment"), upper("name")],
        ignore_case: &["repository", "environment", "name"],
        // The name is unique in the account (or the key fields are the identity).
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!(
            "actions variable {} in {}{}",
            self.name.as_str().to_ascii_uppercase(),
            self.repository.as_str().to_ascii_lowercase(),
            self.environment
                .as_ref()
                .map(|e| format!("/{}", e.as_str()))
                .unwrap_or_default()
        ))
    }
}

block! {
    /// A deploy key whose ed25519 key pair provisioner generates.
    pub struct DeployKey {
        /// Repository, `owner/name`.
        repository: Repository => replace,
        /// Title shown in the repository settings.
        title: String => replace,
        /// Read-only access (Flux only reads).
        read_only: bool = true => replace,
        /// Replace the key pair after this long (new key first, then the old one is removed).
        rotate_after: Option<Duration> => local,
    }
}

impl KindInfo for DeployKey {
    const DOC: &'static str = "A repository deploy key, such as Flux's. Keys are immutable: any change creates the new key before deleting the old. The private half is exported as a secret output for a Secrets Manager secret to keep; it never enters the ledger.";
    const EXPORTS: &'static [Export] = &[
        plain("id", "the key's numeric id"),
        plain("public_key", "the OpenSSH public key"),
        secret("private_key", "the OpenSSH private key"),
    ];
    const RULES: KindRules = KindRules {
        key: &[lower("repository"), exact("title")],
        ignore_case: &["repository"],
        // Nothing unique stops two of these existing side by side for a moment.
        replacement: Replacement::CreateBeforeDestroy,
        unrecoverable: &["private_key"],
        expiring: &[],
        carries_lineage: false,
    };
    fn identity(&self) -> Option<String> {
        Some(format!(
            "deploy key \"{}\" in {}",
            self.title,
            self.repository.as_str().to_ascii_lowercase()
        ))
    }
}
