//! The validated desired state: settings and resources keyed by address, with their
//! dependencies. Everything here has passed validation; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::kinds::{Kind, Spec};
use super::refs::{Address, Reference};
use super::schema::Cx;
use super::source::{Location, Span};
use super::values::{AwsRegion, Duration, LedgerUrl, SecretName};
use crate::{block, string_enum};

string_enum! {
    /// Whether drift is corrected or only reported.
    pub enum Mode {
        /// Correct drift.
        Enforce = "enforce",
        /// Report drift and change nothing.
        Detect = "detect",
    }
}

block! {
    /// Per-resource lifecycle options.
    pub struct Lifecycle {
        /// Refuse any plan that would delete or replace the resource.
        prevent_destroy: bool = false => local,
        /// Field paths owned by someone else (`node_pools.workers.count`): reported, never changed.
        ignore_changes: Vec<String> => local,
        /// `enforce` or `detect` for this resource; `[settings] mode` when left out.
        mode: Option<Mode> => local,
        /// Take over an existing object of this name that this ledger cannot prove it made (made by hand, by Terraform, or by another tool). Without it such an object is a conflict: never adopted silently, never deleted. Objects whose secret output is read elsewhere and cannot be read back (a deploy key's private key) are never adopted.
        adopt: bool = false => local,
    }
}

block! {
    /// How many changes (and reads) run at once.
    pub struct Concurrency {
        /// DigitalOcean changes in flight.
        digitalocean: u32 = 4 => local [1, 32],
        /// AWS changes in flight.
        aws: u32 = 8 => local [1, 64],
        /// GitHub changes in flight (GitHub asks for serial writes per repository).
        github: u32 = 2 => local [1, 16],
        /// Objects read at once per kind while observing (S3 and Spaces buckets, SNS topics), like Terraform's `-parallelism` for refresh. Each read is an HTTP connection: more is a faster pass and a larger daemon (docs/performance.md).
        reads: u32 = 24 => local [1, 64],
    }
}

impl Concurrency {
    /// The keys of `[settings.concurrency]` that are not a provider's name.
    pub const NOT_PROVIDERS: &[&str] = &["reads"];

    /// Changes in flight for the provider called `provider` (`digitalocean`), or `None` when
    /// the settings have no key for it: the executor then runs its changes one at a time.
    /// Every other key of `[settings.concurrency]` is a provider's name, and a test holds them
    /// to the registry's `PROVIDERS` (engine).
    pub fn for_provider(&self, provider: &str) -> Option<u32> {
        match provider {
            "digitalocean" => Some(self.digitalocean),
            "aws" => Some(self.aws),
            "github" => Some(self.github),
            _ => None,
        }
    }
}

block! {
    /// Client-side request budgets, kept below the APIs' own limits.
    pub struct RateLimits {
        /// DigitalOcean requests per minute (the API allows 250).
        digitalocean_per_minute: u32 = 200 => local [1, 250],
        /// DigitalOcean requests per hour (the API allows 5,000).
        digitalocean_per_hour: u32 = 4500 => local [1, 5000],
        /// GitHub requests per hour (5,000 for a token, more for an app).
        github_per_hour: u32 = 4000 => local [1, 15000],
    }
}

block! {
    /// AWS defaults.
    pub struct AwsSettings {
        /// Region for AWS resources that name none; `AWS_REGION` when left out.
        region: Option<AwsRegion> => local,
    }
}

block! {
    /// The `[settings]` table.
    pub struct Settings {
        /// Time between reconcile passes of the daemon.
        interval: Duration = "5m" => local,
        /// `enforce` corrects drift, `detect` only reports it.
        mode: Mode = "enforce" => local,
        /// Delete objects the ledger owns once they leave the desired state.
        prune: bool = false => local,
        /// Where the ledger lives; `--ledger` and `PROVISIONER_LEDGER` take precedence.
        ledger: Option<LedgerUrl> => local,
        /// Secrets Manager secret holding the fingerprint key, when `PROVISIONER_FINGERPRINT_KEY` is unset.
        fingerprint_key_secret: Option<SecretName> => local,
        /// Report the objects this ledger does not manage (`provisioner_unmanaged_objects`, as `provisioner scan` lists them) after every daemon pass. Observing already lists every kind in use, so this costs no extra request; off by default because the counts include objects other tools own.
        report_unmanaged: bool = false => local,
        /// Changes in flight per provider, and reads in flight per kind.
        concurrency: Concurrency => local,
        /// Request budgets.
        rate_limits: RateLimits => local,
        /// AWS defaults.
        aws: AwsSettings => local,
    }
    check = check_settings;
}

fn check_settings(s: &Settings, span: Span, cx: &mut Cx<'_>) {
    if s.interval.seconds() < 30 {
        cx.nested("interval", |cx| {
            cx.error(
                span,
                format!(
                    "\"{}\" is too short: reconcile at most every 30 seconds",
                    s.interval.0
                ),
            )
            .set_help(
                "observing every kind costs API requests; the DigitalOcean budget is 5,000 an hour",
            );
        });
    }
}

impl Default for Settings {
    fn default() -> Self {
        <Settings as super::schema::Decode>::missing().expect("every setting has a default")
    }
}

/// One resource of the desired state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Resource {
    /// `provider.kind.name`.
    pub address: Address,
    /// The fields, typed by kind.
    pub spec: Spec,
    /// Lifecycle options.
    pub lifecycle: Lifecycle,
    /// Resources this one needs first: referenced ones and `depends_on`.
    pub depends_on: BTreeSet<Address>,
    /// Every reference its fields hold, with the field path that holds it.
    pub references: Vec<(String, Reference)>,
    /// Where the resource's table is written.
    #[serde(skip)]
    pub location: Location,
    /// Where each top-level field's value is written (`ttl` → `dns.toml:12:7`): what a
    /// plan cites as the reason for a change of the desired state.
    #[serde(skip)]
    pub field_locations: BTreeMap<String, Location>,
    /// `spec` as JSON, made once when the desired state is loaded: the planner compares
    /// fields in this form on every pass. Build resources with [`Resource::new`] so the two
    /// always agree.
    #[serde(skip)]
    pub spec_json: serde_json::Value,
}

impl Resource {
    /// A resource with no dependencies yet (validation fills `depends_on`).
    pub fn new(
        address: Address,
        spec: Spec,
        lifecycle: Lifecycle,
        references: Vec<(String, Reference)>,
        location: Location,
    ) -> Self {
        let spec_json = spec.to_json();
        Resource {
            address,
            spec,
            lifecycle,
            depends_on: BTreeSet::new(),
            references,
            location,
            field_locations: BTreeMap::new(),
            spec_json,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }
}

/// The whole desired state, validated.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DesiredState {
    /// The `[settings]` table (defaults when absent).
    pub settings: Settings,
    /// Resources by address.
    pub resources: BTreeMap<Address, Resource>,
    /// Number of files read.
    pub files: usize,
    /// Keyed fingerprints of the secret values, by `address.field`, filled in by the CLI or
    /// daemon once the values have been read (the planner itself reads nothing).
    #[serde(skip)]
    pub secret_fingerprints: BTreeMap<String, String>,
    /// Resources to replace even though nothing forces it (`apply --replace ADDR`): a new
    /// key pair, a new access key, a new kubeconfig token, handed on to every consumer.
    #[serde(skip)]
    pub replace: std::collections::BTreeSet<Address>,
    /// Protected resources (`prevent_destroy`) that this one command may destroy anyway
    /// (`apply --allow-destroy ADDR`): the explicit override for a deliberate replacement
    /// or removal. Never read from the files.
    #[serde(skip)]
    pub allow_destroy: std::collections::BTreeSet<Address>,
    /// `[[moved]]` hints, `(from, to)`: ledger entries of `from` are renamed to `to` before
    /// planning, as Terraform's `moved` blocks (and `provisioner state mv`) do.
    pub moved: Vec<(Address, Address)>,
    /// The chosen environment (`-e NAME`), when the desired state describes several.
    pub environment: Option<super::expand::Environment>,
    /// Every environment the desired state describes (`environments/NAME.toml`), sorted.
    pub environments: Vec<String>,
    /// The root module's outputs by name: written to the ledger after each pass, read with
    /// `provisioner output`.
    pub outputs: BTreeMap<String, Output>,
}

/// A declared output (`[output.NAME]`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Output {
    /// The value as written, references (`${provider.kind.name.attribute}`) left for the
    /// engine to fill in from the ledger's recorded attributes.
    pub value: serde_json::Value,
    /// `description`.
    pub description: Option<String>,
    /// `sensitive`: masked by `provisioner output` unless asked for by name.
    pub sensitive: bool,
    /// Where it is declared.
    #[serde(skip)]
    pub location: Location,
}

impl DesiredState {
    /// The chosen environment's name, if any.
    pub fn environment_name(&self) -> Option<&str> {
        self.environment.as_ref().map(|e| e.name.as_str())
    }
}

impl DesiredState {
    /// Number of resources per provider, in plan order.
    pub fn counts_by_provider(&self) -> Vec<(&'static str, usize)> {
        super::kinds::PROVIDERS
            .iter()
            .map(|p| {
                (
                    *p,
                    self.resources
                        .values()
                        .filter(|r| r.kind().provider() == *p)
                        .count(),
                )
            })
            .collect()
    }

    /// Addresses in dependency order: every resource after what it depends on; ties by address.
    pub fn topological_order(&self) -> Vec<&Address> {
        let mut remaining: BTreeMap<&Address, usize> = self
            .resources
            .iter()
            .map(|(a, r)| {
                (
                    a,
                    r.depends_on
                        .iter()
                        .filter(|d| self.resources.contains_key(*d))
                        .count(),
                )
            })
            .collect();
        let mut dependants: BTreeMap<&Address, Vec<&Address>> = BTreeMap::new();
        for (a, r) in &self.resources {
            for d in r
                .depends_on
                .iter()
                .filter(|d| self.resources.contains_key(*d))
            {
                dependants.entry(d).or_default().push(a);
            }
        }
        let mut ready: BTreeSet<&Address> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(a, _)| *a)
            .collect();
        let mut out = Vec::with_capacity(self.resources.len());
        while let Some(a) = ready.pop_first() {
            out.push(a);
            for d in dependants.get(a).map(Vec::as_slice).unwrap_or_default() {
                let n = remaining.get_mut(d).expect("every dependant is a resource");
                *n -= 1;
                if *n == 0 {
                    ready.insert(d);
                }
            }
        }
        // Validation rejects cycles, so every resource was emitted.
        out
    }
}
