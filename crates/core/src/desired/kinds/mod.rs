//! Every kind provisioner manages, declared once: its fields (through `block!`), the
//! attributes it exports for references, and what makes two resources the same cloud object.

pub mod aws;
pub mod common;
pub mod digitalocean;
pub mod flux;
pub mod github;
pub mod identity;
pub mod kubernetes;

use super::load::Raw;
use super::schema::{Cx, Decode, FieldInfo};
pub use identity::{Case, Expiry, KeyField, KindRules, Order, Replacement, exact, lower, upper};

/// An attribute a kind exports, usable as `${provider.kind.name.attribute}`.
#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// Attribute name.
    pub name: &'static str,
    /// What it holds.
    pub doc: &'static str,
    /// Secret outputs may only flow into secret fields.
    pub secret: bool,
    /// A list: references must index it (`dkim_tokens[0]`).
    pub list: bool,
}

/// A plain exported attribute.
pub const fn plain(name: &'static str, doc: &'static str) -> Export {
    Export {
        name,
        doc,
        secret: false,
        list: false,
    }
}

/// A secret exported attribute.
pub const fn secret(name: &'static str, doc: &'static str) -> Export {
    Export {
        name,
        doc,
        secret: true,
        list: false,
    }
}

/// A list-valued exported attribute.
pub const fn list(name: &'static str, doc: &'static str) -> Export {
    Export {
        name,
        doc,
        secret: false,
        list: true,
    }
}

/// What every kind declares besides its fields.
pub trait KindInfo {
    /// One paragraph for the docs.
    const DOC: &'static str;
    /// The attributes others may reference.
    const EXPORTS: &'static [Export];
    /// What identifies its cloud objects and how the planner treats them (see
    /// [`identity`]); stated in full by every kind.
    const RULES: KindRules;
    /// What deleting an object of this kind takes with it, when that is more than the
    /// object (a `FluxInstance` uninstalls Flux): the plan says it on every delete.
    const ON_DELETE: Option<&'static str> = None;
    /// The cloud-side identity: two resources with the same one would fight over one object.
    fn identity(&self) -> Option<String> {
        None
    }
}

macro_rules! kinds {
    ($( $variant:ident => $provider:literal . $kind:literal : $ty:ty ),* $(,)?) => {
        /// A kind of resource: the middle part of an address.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $provider, ".", $kind, "`")]
                $variant,
            )*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// `digitalocean`, `aws` or `github`.
            pub fn provider(self) -> &'static str {
                match self { $(Kind::$variant => $provider),* }
            }

            /// `provider.kind`, as the ledger and live state key kinds.
            pub fn key(self) -> &'static str {
                match self { $(Kind::$variant => concat!($provider, ".", $kind)),* }
            }

            /// The kind name within its provider.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => $kind),* }
            }

            /// The kind's position in [`Kind::ALL`], for tables indexed by kind.
            pub fn index(self) -> usize {
                self as usize
            }

            /// Parses `provider.kind`, as the ledger and live state write it.
            pub fn parse(text: &str) -> Option<Kind> {
                let (provider, kind) = text.split_once('.')?;
                Kind::lookup(provider, kind)
            }

            /// Finds a kind by provider and name.
            pub fn lookup(provider: &str, kind: &str) -> Option<Kind> {
                Kind::ALL.iter().copied().find(|k| k.provider() == provider && k.name() == kind)
            }

            /// The kind's fields.
            pub fn fields(self) -> Vec<FieldInfo> {
                match self { $(Kind::$variant => <$ty>::fields()),* }
            }

            /// The kind's exported attributes.
            pub fn exports(self) -> &'static [Export] {
                match self { $(Kind::$variant => <$ty as KindInfo>::EXPORTS),* }
            }

            /// The kind's documentation paragraph.
            pub fn doc(self) -> &'static str {
                match self { $(Kind::$variant => <$ty as KindInfo>::DOC),* }
            }

            /// What a delete takes with it besides the object, if the kind says.
            pub fn on_delete(self) -> Option<&'static str> {
                match self { $(Kind::$variant => <$ty as KindInfo>::ON_DELETE),* }
            }

            /// The kind's rules for the planner.
            pub fn rules(self) -> KindRules {
                match self { $(Kind::$variant => <$ty as KindInfo>::RULES),* }
            }
        }

        impl Kind {
            /// True when objects of this kind carry the ledger's lineage marker, so an
            /// object this ledger made can be proven to be its own: tags on DOKS clusters
            /// (`provisioner:lineage:<lineage>`) and on every AWS kind (the tag
            /// `provisioner:lineage`). The other DigitalOcean kinds have no tags (VPCs and
            /// projects have only the user's own `description`; firewall `tags` select
            /// Droplets), and GitHub secrets, variables and deploy keys have nothing but
            /// their name: an object of those kinds is adopted only on proof from the
            /// ledger (a write-ahead intent) or the user (`lifecycle.adopt`,
            /// `state import`). docs/running.md lists this per kind.
            pub fn carries_lineage(self) -> bool {
                self.rules().carries_lineage
            }
        }

        impl std::fmt::Display for Kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.key())
            }
        }

        /// The validated fields of one resource, typed by kind.
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum Spec {
            $(
                #[doc = concat!("`", $provider, ".", $kind, "`")]
                $variant($ty),
            )*
        }

        impl Spec {
            /// The kind of this spec.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$variant(_) => Kind::$variant),* }
            }

            /// Decodes the fields of a resource of `kind`.
            pub fn decode(kind: Kind, raw: &Raw, cx: &mut Cx<'_>) -> Option<Spec> {
                match kind { $(Kind::$variant => <$ty>::decode(raw, cx).map(Spec::$variant)),* }
            }

            /// The cloud-side identity, if the kind has one.
            pub fn identity(&self) -> Option<String> {
                match self { $(Spec::$variant(s) => s.identity()),* }
            }
        }
    };
}

kinds! {
    DoVpc => "digitalocean"."vpc": digitalocean::Vpc,
    DoKubernetesCluster => "digitalocean"."kubernetes_cluster": digitalocean::KubernetesCluster,
    DoLoadBalancer => "digitalocean"."load_balancer": digitalocean::LoadBalancer,
    DoFirewall => "digitalocean"."firewall": digitalocean::Firewall,
    DoDomain => "digitalocean"."domain": digitalocean::Domain,
    DoDomainRecord => "digitalocean"."domain_record": digitalocean::DomainRecord,
    DoCdnEndpoint => "digitalocean"."cdn_endpoint": digitalocean::CdnEndpoint,
    DoSpacesBucket => "digitalocean"."spaces_bucket": digitalocean::SpacesBucket,
    DoSpacesKey => "digitalocean"."spaces_key": digitalocean::SpacesKey,
    DoProject => "digitalocean"."project": digitalocean::Project,
    AwsS3Bucket => "aws"."s3_bucket": aws::S3Bucket,
    AwsSnsTopic => "aws"."sns_topic": aws::SnsTopic,
    AwsSesDomainIdentity => "aws"."ses_domain_identity": aws::SesDomainIdentity,
    AwsSesConfigurationSet => "aws"."ses_configuration_set": aws::SesConfigurationSet,
    AwsIamSmtpUser => "aws"."iam_smtp_user": aws::IamSmtpUser,
    AwsSecretsmanagerSecret => "aws"."secretsmanager_secret": aws::SecretsmanagerSecret,
    GhActionsSecret => "github"."actions_secret": github::ActionsSecret,
    GhEnvironmentSecret => "github"."environment_secret": github::EnvironmentSecret,
    GhActionsVariable => "github"."actions_variable": github::ActionsVariable,
    GhDeployKey => "github"."deploy_key": github::DeployKey,
    KubeManifest => "kubernetes"."manifest": kubernetes::Manifest,
    KubeSecret => "kubernetes"."secret": kubernetes::KubeSecret,
    FluxInstance => "flux"."instance": flux::FluxInstance,
}

impl Spec {
    /// The spec as JSON, in the form the planner compares with what providers observe: what
    /// the clouds treat as equivalent is written one way (a DNS host name without its final
    /// dot; an autoscaled pool's `count` as `initial_count`, which is not compared because the
    /// autoscaler owns the size). See the realism inventory in `docs/testing.md`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        match self {
            Spec::DoKubernetesCluster(_) => digitalocean::canonical_cluster(&mut v),
            Spec::DoDomainRecord(_) => digitalocean::canonical_record(&mut v),
            Spec::KubeManifest(m) => kubernetes::manifest_json(m, &mut v),
            Spec::KubeSecret(k) => kubernetes::secret_json(k, &mut v),
            Spec::FluxInstance(_) => flux::instance_json(&mut v),
            _ => {}
        }
        v
    }

    /// The secret source of a secret field, if the kind has that field.
    pub fn secret(&self, field: &str) -> Option<&crate::desired::values::SecretSource> {
        match (self, field) {
            (Spec::AwsSecretsmanagerSecret(s), "value") => Some(&s.value.0),
            (Spec::GhActionsSecret(s), "value") => Some(&s.value.0),
            (Spec::GhEnvironmentSecret(s), "value") => Some(&s.value.0),
            (Spec::KubeManifest(m), "cluster") => Some(&m.cluster.0),
            (Spec::KubeSecret(k), "cluster") => Some(&k.cluster.0),
            (Spec::FluxInstance(f), "cluster") => Some(&f.cluster.0),
            (Spec::KubeSecret(k), path) => Some(&k.data.get(path.strip_prefix("data.")?)?.0),
            _ => None,
        }
    }

    /// Every secret value of the resource, with the path that names it: the kind's secret
    /// fields that are set (`value`, `cluster`), and one path per entry of a table of
    /// secret values (`data.identity` for a `kubernetes.secret`'s `data`). The ledger's
    /// fingerprints, the executor's resolved values and the plan's `(sensitive)` lines are
    /// keyed by these paths.
    pub fn secret_sources(&self) -> Vec<(String, &crate::desired::values::SecretSource)> {
        let mut out: Vec<(String, &crate::desired::values::SecretSource)> = self
            .kind()
            .secret_fields()
            .iter()
            .filter_map(|f| Some((f.to_string(), self.secret(f)?)))
            .collect();
        if let Spec::KubeSecret(k) = self {
            out.extend(k.data.iter().map(|(key, v)| (format!("data.{key}"), &v.0)));
        }
        out
    }
}

/// The providers, in the order plans list them.
pub const PROVIDERS: &[&str] = &["digitalocean", "aws", "github", "kubernetes", "flux"];
