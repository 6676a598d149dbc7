//! Secrets: write-only values and the outputs the clouds give only once. A secret field
//! changes when its fingerprint, the cloud's `updated_at`, its producer or its expiry says so;
//! a consumer that must be written again with an unrecoverable output makes its producer
//! make a new one; `rotate_after` replaces what is older than that; the ledger's
//! `undelivered` and `retiring` marks carry a rotation across an interrupted apply.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Attrs, Planner, key_of};
use crate::desired::refs::Reference;
use crate::desired::values::{Duration, SecretSource};
use crate::desired::{Address, Resource};
use crate::ledger::LedgerEntry;
use crate::live::LiveObject;
use crate::plan::model::{FieldChange, Shown};

/// consumer starts, and clears each consumer as it is written; a crash in between leaves it,
/// and the next plan makes the producer anew (see [`undelivered`]).
pub const UNDELIVERED: &str = "undelivered";

/// The key, in a ledger entry's `options`, of the parts of its object that a change
/// superseded and that are removed once every consumer holds their successors
/// ([`crate::providers::Applied::retiring`]): `["<id>", …]`.
pub const RETIRING: &str = "retiring";

/// The parts of a ledger entry's object still to be retired.
pub fn retiring(entry: &LedgerEntry) -> Vec<String> {
    entry
        .options
        .get(RETIRING)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The unrecoverable outputs of a ledger entry that some consumer never received, each with
/// the consumers still waiting for it.
pub fn undelivered(entry: &LedgerEntry) -> BTreeMap<String, BTreeSet<String>> {
    let Some(Value::Object(outputs)) = entry.options.get(UNDELIVERED) else {
        return BTreeMap::new();
    };
    outputs
        .iter()
        .map(|(output, waiting)| {
            let waiting = waiting
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (output.clone(), waiting)
        })
        .filter(|(_, w): &(String, BTreeSet<String>)| !w.is_empty())
        .collect()
}

impl<'a> Planner<'a> {
    /// An unrecoverable output of `r` that its ledger entry says was never delivered to a
    /// consumer that is still desired and still reads it, with that consumer.
    pub(super) fn never_delivered(
        &self,
        r: &Resource,
        entry: &LedgerEntry,
    ) -> Option<(&'static str, &'a Address)> {
        let waiting = undelivered(entry);
        if waiting.is_empty() {
            return None;
        }
        self.resources.iter().find_map(|c| {
            // A consumer that could not be observed may well have its copy: unknown.
            if !self.is_observed(c) {
                return None;
            }
            let pending = waiting.iter().find_map(|(output, consumers)| {
                consumers
                    .contains(&c.address.to_string())
                    .then_some(output.as_str())
            })?;
            c.references.iter().find_map(|(_, reference)| {
                if reference.address != r.address || reference.attribute != pending {
                    return None;
                }
                r.kind().unrecoverable(pending).map(|out| (out, &c.address))
            })
        })
    }

    /// Write-only values: changed when the desired fingerprint differs from the ledger's,
    /// when the cloud says it changed after provisioner's last write, or when the value comes
    /// from a resource that gets a new one in this apply.
    pub(super) fn secret_changes(
        &mut self,
        r: &Resource,
        spec: &Value,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Vec<FieldChange> {
        let mut out = Vec::new();
        for &name in r.kind().secret_fields() {
            let source = r.spec.secret(name);
            let mut changed = false;
            if let Some(SecretSource::Ref(reference)) = source
                && let Some(&j) = self.index.get(&key_of(&reference.address))
                && matches!(self.attrs[j], Attrs::AfterApply)
            {
                changed = true;
            }
            if let Some(SecretSource::Ref(reference)) = source
                && self.expiring(reference, entry)
            {
                changed = true;
            }
            if !self.desired.secret_fingerprints.is_empty() {
                let key = format!("{}.{name}", r.address);
                if let (Some(want), Some(e)) = (self.desired.secret_fingerprints.get(&key), entry)
                    && e.fingerprints.get(name) != Some(want)
                {
                    changed = true;
                }
            }
            // A generated value belongs to the resource: a hand edit there is not drift.
            let mut drift = false;
            if let (Some(seen), Some(written)) = (
                &object.updated_at,
                entry.and_then(|e| e.updated_at.as_ref()),
            ) && seen > written
                && !matches!(source, Some(SecretSource::Generate(_)))
            {
                changed = true;
                drift = true;
            }
            if entry.is_none()
                && !matches!(source, Some(SecretSource::Generate(_)))
                && spec.get(name).is_some()
            {
                // Adopted: provisioner has never written the value, so it must.
                changed = true;
            }
            if changed {
                if let Some(SecretSource::Ref(reference)) = source {
                    self.need_new_from(reference, &r.address);
                }
                out.push(FieldChange {
                    path: Cow::Borrowed(name),
                    old: Shown::Sensitive,
                    new: Shown::Sensitive,
                    forces_replacement: false,
                    drift,
                    source: None,
                    unchanged: None,
                });
            }
        }
        out
    }

    /// A value that expires — a cluster's kubeconfig, whose token lives `kubeconfig_expiry`
    /// (default 7 days) — is written again once two thirds of its lifetime have passed since
    /// the consumer last got it (the consumer's `updated_at` as the ledger recorded it,
    /// against the observation's time), so CI never holds an expired token.
    pub(super) fn expiring(&self, reference: &Reference, entry: Option<&LedgerEntry>) -> bool {
        let Some(&j) = self.index.get(&key_of(&reference.address)) else {
            return false;
        };
        let producer = self.resources[j];
        let Some(expiry) = producer.kind().expiry(&reference.attribute) else {
            return false;
        };
        let lifetime = producer
            .spec_json
            .get(expiry.lifetime_field)
            .and_then(Value::as_str)
            .and_then(|d| Duration::parse(d).ok())
            .unwrap_or(expiry.default_seconds);
        let (Some(written), Some(now)) = (
            entry.and_then(|e| e.updated_at.as_deref()),
            self.live.observed_at.as_deref(),
        ) else {
            return false;
        };
        match (
            humantime::parse_rfc3339_weak(written),
            humantime::parse_rfc3339_weak(now),
        ) {
            (Ok(w), Ok(n)) => w + std::time::Duration::from_secs(lifetime * 2 / 3) <= n,
            _ => false,
        }
    }

    /// A consumer re-created from scratch needs every unrecoverable output it reads anew.
    pub(super) fn note_needs_new(&mut self, r: &Resource) {
        for &name in r.kind().secret_fields() {
            if let Some(SecretSource::Ref(reference)) = r.spec.secret(name) {
                self.need_new_from(reference, &r.address);
            }
        }
    }

    /// Records that `consumer` needs `reference` anew, when its producer's cloud cannot give
    /// it back and the producer is not already making a new one in this plan.
    pub(super) fn need_new_from(&mut self, reference: &Reference, consumer: &Address) {
        let Some(&j) = self.index.get(&key_of(&reference.address)) else {
            return;
        };
        let producer = self.resources[j];
        if !self.is_observed(producer) {
            return;
        }
        if producer
            .kind()
            .unrecoverable(&reference.attribute)
            .is_some()
            && !matches!(self.attrs[j], Attrs::AfterApply)
            && !self.desired.replace.contains(&producer.address)
        {
            self.needs_new
                .push((producer.address.clone(), consumer.clone()));
        }
    }

    /// `rotate_after`: an object older than that (by its `created_at`, as the cloud or the
    /// ledger says, against the observation's time) is replaced. The observation's time is
    /// the planner's only clock, so plans stay reproducible.
    pub(super) fn rotation_due(
        &self,
        r: &Resource,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Option<FieldChange> {
        let period = r.spec_json.get("rotate_after")?.as_str()?;
        let seconds = Duration::parse(period).ok()?;
        let born = object
            .attributes
            .get("created_at")
            .or_else(|| entry.and_then(|e| e.attributes.get("created_at")))?
            .as_str()?;
        let now = humantime::parse_rfc3339(self.live.observed_at.as_deref()?).ok()?;
        let created = humantime::parse_rfc3339(born).ok()?;
        let due = created + std::time::Duration::from_secs(seconds);
        (due <= now).then(|| FieldChange {
            path: Cow::Borrowed("rotate_after"),
            old: Shown::Value(Value::String(format!("created {born}"))),
            new: Shown::Value(Value::String(format!("rotation due (older than {period})"))),
            forces_replacement: true,
            drift: false,
            source: None,
            unchanged: None,
        })
    }
}
