//! `provisioner scan`: what the observed clouds hold that this ledger does not manage. Pure:
//! it reads a plan (for the conflicts it found) and the observation; the CLI and the daemon
//! do the observing.
//!
//! Every observed object of a kind the desired state or the ledger uses falls in one
//! category:
//! - **managed**: the ledger records its id (this ledger's own);
//! - **theirs**: it carries another provisioner ledger's lineage marker;
//! - **adoptable**: it matches a desired resource by name and the ledger does not record it
//!   yet: either the next apply adopts it (it carries this ledger's lineage, or a
//!   write-ahead intent or `lifecycle.adopt` says so), or nothing proves whose it is (the
//!   plan's conflicts) and `lifecycle.adopt = true` or `provisioner state import` takes it
//!   over;
//! - **unmanaged**: nothing in the desired state names it, and no ledger records it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::model::{Action, Plan};
use crate::desired::Kind;
use crate::ledger::Ledger;
use crate::live::{LiveState, ObserveStatus};

/// The category of one observed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Matches a desired resource by name; not provably anyone's.
    Adoptable,
    /// Nothing names or records it.
    Unmanaged,
    /// Carries another ledger's lineage.
    Theirs,
}

impl Category {
    /// The word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Adoptable => "adoptable",
            Category::Unmanaged => "unmanaged",
            Category::Theirs => "theirs",
        }
    }
}

/// One object this ledger does not manage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Found {
    /// The cloud id.
    pub id: String,
    /// Its category.
    pub category: Category,
    /// The fields that identify it (the kind's natural key: `name`; a record's `domain`,
    /// `type`, `name` and `data`; a secret's `repository` and `name`).
    pub key: BTreeMap<String, Value>,
    /// For `adoptable`: the desired address it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// For `theirs`: the other ledger's lineage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

/// What one kind holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindScan {
    /// `provider.kind`.
    pub kind: String,
    /// Why the kind could not be scanned, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_observed: Option<String>,
    /// Parts of the kind that could not be observed (`repository=example-org/x`): what lies
    /// there is unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unobserved_scopes: Vec<String>,
    /// When only some objects of the kind are read, which (`named`: those the desired state
    /// or the ledger names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<&'static str>,
    /// Objects this ledger manages.
    pub managed: usize,
    /// The others, adoptable first, then unmanaged, then theirs; by id within each.
    pub objects: Vec<Found>,
}

impl KindScan {
    /// True when everything of the kind in scope was observed.
    pub fn is_complete(&self) -> bool {
        self.not_observed.is_none() && self.unobserved_scopes.is_empty()
    }
}

/// Which objects of a kind observing reads, when not all: AWS lists name objects without
/// their details, so only those the desired state or the ledger names are read (one request
/// or more each); an object made by hand under another name is not seen.
pub fn coverage(kind: Kind) -> Option<&'static str> {
    (kind.provider() == "aws").then_some("named")
}

/// The scan of every kind in scope, in kind order.
pub fn scan(plan: &Plan, ledger: &Ledger, live: &LiveState, kinds: &[Kind]) -> Vec<KindScan> {
    let managed: HashSet<(&str, &str)> = ledger
        .resources
        .values()
        .map(|e| (e.kind.as_str(), e.id.as_str()))
        .collect();
    let conflicts: HashMap<(&str, &str), &str> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Conflict | Action::Adopt))
        .filter_map(|c| {
            let id = c.cloud_id.as_deref()?;
            let kind = Kind::lookup(c.address.provider(), c.address.kind())?;
            Some(((kind.key(), id), c.address.as_str()))
        })
        .collect();
    kinds
        .iter()
        .map(|&kind| {
            let key = kind.key();
            let not_observed = match live.kind(kind).map(|k| &k.status) {
                Some(ObserveStatus::Failed(why)) => Some(why.clone()),
                None => Some("not observed".to_string()),
                Some(ObserveStatus::Complete) => None,
            };
            let mut n_managed = 0;
            let mut objects = Vec::new();
            if not_observed.is_none() {
                for o in live.objects(kind) {
                    if managed.contains(&(key, o.id.as_str())) {
                        n_managed += 1;
                        continue;
                    }
                    let theirs = o
                        .lineage()
                        .filter(|l| *l != ledger.lineage)
                        .map(str::to_string);
                    let address = conflicts.get(&(key, o.id.as_str())).map(|a| a.to_string());
                    let category = match (&theirs, &address) {
                        (Some(_), _) => Category::Theirs,
                        (None, Some(_)) => Category::Adoptable,
                        (None, None) => Category::Unmanaged,
                    };
                    objects.push(Found {
                        id: o.id.clone(),
                        category,
                        key: kind
                            .key_fields()
                            .iter()
                            .filter_map(|f| Some((f.to_string(), o.fields.get(*f)?.clone())))
                            .collect(),
                        address: address.filter(|_| category == Category::Adoptable),
                        lineage: theirs,
                    });
                }
            }
            objects.sort_by(|a, b| (a.category, &a.id).cmp(&(b.category, &b.id)));
            KindScan {
                kind: key.to_string(),
                not_observed,
                unobserved_scopes: live
                    .failed_scopes(kind)
                    .iter()
                    .map(|s| format!("{}: {}", s.describe(), s.reason))
                    .collect(),
                coverage: coverage(kind),
                managed: n_managed,
                objects,
            }
        })
        .collect()
}
