//! Providers: the adapters that observe and change one cloud each. `digitalocean` is the
//! first; `fake` is an in-memory cloud for planner and executor tests.

pub mod digitalocean;
pub mod fake;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::desired::Kind;
use crate::plan::Action;
use crate::plan::model::ReplaceStrategy;

/// One change for a provider to make.
#[derive(Clone, Copy, Debug)]
pub struct ApplyRequest<'a> {
    /// The kind.
    pub kind: Kind,
    /// What to do.
    pub action: Action,
    /// The object's id, for everything but a create.
    pub cloud_id: Option<&'a str>,
    /// The desired fields, references resolved.
    pub fields: &'a Map<String, Value>,
    /// For a replace: which object goes first.
    pub strategy: Option<ReplaceStrategy>,
    /// The resource's whole spec, local fields included (`kubeconfig_expiry`), when it is
    /// desired.
    pub spec: Option<&'a Value>,
    /// The ledger's lineage, for the tag created objects carry.
    pub lineage: &'a str,
}

/// What a change produced.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The object's id (empty after a delete).
    pub id: String,
    /// Its exported, non-secret attributes.
    pub attributes: BTreeMap<String, Value>,
    /// Secret outputs (`kubeconfig`, `secret_key`): handed on by reference, never stored.
    pub secrets: BTreeMap<String, String>,
    /// The cloud's timestamp of the change, where it keeps one.
    pub updated_at: Option<String>,
}

/// A change that failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What happened (never a secret value).
    pub message: String,
    /// Whether the next pass may succeed.
    pub retryable: bool,
}

impl ProviderError {
    /// A non-retryable error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        ProviderError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Something that can make changes in a cloud.
pub trait Provider {
    /// Makes one change.
    fn apply(
        &self,
        req: ApplyRequest<'_>,
    ) -> impl std::future::Future<Output = Result<Applied, ProviderError>>;
}
