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
/// superseded and that are removed once every consumer that held them has their successors
/// (`provisioner_engine::providers::Applied::retiring`): `[{"id": "<id>", "held_by": ["<consumer
/// address>", …]}, …]`.
pub const RETIRING: &str = "retiring";

/// The parts of a ledger entry's object still to be retired.
pub fn retiring(entry: &LedgerEntry) -> Vec<String> {
    retiring_held(entry).into_keys().collect()
}

/// The parts still to be retired, each with the consumers that may still hold it (empty:
/// nobody, it may go).
pub fn retiring_held(entry: &LedgerEntry) -> BTreeMap<String, BTreeSet<String>> {
    entry
        .options
        .get(RETIRING)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let id = v["id"].as_str()?.to_string();
            let held = v["held_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            Some((id, held))
        })
        .collect()
}

/// The `options` value of [`RETIRING`] for these parts.
pub fn retiring_value(parts: &BTreeMap<String, BTreeSet<String>>) -> Value {
    Value::Array(
        parts
            .iter()
            .map(|(id, held)| serde_json::json!({ "id": id, "held_by": held }))
            .collect(),
    )
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
        for (name, source) in r.spec.secret_sources() {
            let source = Some(source);
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
                    && e.fingerprints.get(&name) != Some(want)
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
            // (Every source listed is set: a table's entries are, and fields are listed
            // only when the spec has them.)
            if entry.is_none()
                && !matches!(source, Some(SecretSource::Generate(_)))
                && (spec.get(&name).is_some() || name.contains('.'))
            {
                // Adopted: provisioner has never written the value, so it must.
                changed = true;
            }
            if changed {
                if let Some(SecretSource::Ref(reference)) = source {
                    self.need_new_from(reference, &r.address);
                }
                out.push(FieldChange {
                    path: Cow::Owned(name),
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

    /// A value that expires (its producer's kind declares an `Expiry`: a cluster's
    /// kubeconfig, whose token lives `kubeconfig_expiry`, default 7 days) is written again
    /// once two thirds of its lifetime have passed since the consumer last got it (the
    /// consumer's `updated_at` as the ledger recorded it, against the observation's time), so
    /// CI never holds an expired token.
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
        for (_, source) in r.spec.secret_sources() {
            if let SecretSource::Ref(reference) = source {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::Ledger;
    use crate::live::LiveState;
    use crate::plan::model::Action;
    use crate::plan::planner::testing::{addr, change_of, desired, entry, ledger, live, plan_ok};

    const SECRET: &str = "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"token\"\nvalue = { env = \"TOKEN\" }\n";

    fn secret_state(cloud_updated: &str) -> (Ledger, LiveState) {
        let mut e = entry("github.actions_secret", "o/r/TOKEN");
        e["fingerprints"] = json!({"value": "fp-old"});
        e["updated_at"] = json!("2026-01-01T00:00:00Z");
        let l = ledger(json!({"github.actions_secret.s": e}));
        let seen = live(json!({"github.actions_secret": {"objects": [{
            "id": "o/r/TOKEN", "fields": {"repository": "o/r", "name": "TOKEN"},
            "updated_at": cloud_updated,
        }]}}));
        (l, seen)
    }

    #[test]
    fn the_ledgers_marks_are_read_back() {
        let mut e: LedgerEntry =
            serde_json::from_value(entry("aws.iam_smtp_user", "u")).expect("entry");
        assert!(retiring(&e).is_empty() && undelivered(&e).is_empty());
        e.options.insert(
            RETIRING.into(),
            json!([{"id": "AKIA1", "held_by": ["github.actions_secret.s"]}, {"id": "AKIA2", "held_by": []}]),
        );
        e.options.insert(
            UNDELIVERED.into(),
            json!({"smtp_password": ["github.actions_secret.s"], "other": []}),
        );
        assert_eq!(retiring(&e), ["AKIA1", "AKIA2"]);
        let held = retiring_held(&e);
        assert!(held["AKIA1"].contains("github.actions_secret.s"));
        assert!(held["AKIA2"].is_empty(), "nobody holds it: it may go");
        assert_eq!(retiring_value(&held)[1]["id"], "AKIA2");
        let waiting = undelivered(&e);
        assert_eq!(waiting.len(), 1, "an output nobody waits for is delivered");
        assert!(waiting["smtp_password"].contains("github.actions_secret.s"));
    }

    #[test]
    fn a_changed_fingerprint_rewrites_the_secret_and_an_unchanged_one_does_not() {
        let (l, seen) = secret_state("2025-12-31T00:00:00Z");
        let mut d = desired(SECRET);
        d.secret_fingerprints
            .insert("github.actions_secret.s.value".into(), "fp-old".into());
        let (p, _) = plan_ok(&d, &l, &seen);
        assert_eq!(
            change_of(&p, "github.actions_secret.s").action,
            Action::NoOp
        );
        d.secret_fingerprints
            .insert("github.actions_secret.s.value".into(), "fp-new".into());
        let (p, _) = plan_ok(&d, &l, &seen);
        let c = change_of(&p, "github.actions_secret.s");
        assert_eq!(c.action, Action::Update);
        assert_eq!(
            (
                c.fields[0].path.as_ref(),
                &c.fields[0].new,
                c.fields[0].drift
            ),
            ("value", &Shown::Sensitive, false)
        );
    }

    #[test]
    fn a_secret_the_cloud_changed_after_the_last_write_is_drift() {
        let (l, seen) = secret_state("2026-01-02T00:00:00Z");
        let (p, _) = plan_ok(&desired(SECRET), &l, &seen);
        let c = change_of(&p, "github.actions_secret.s");
        assert_eq!(c.action, Action::Update);
        assert!(c.fields[0].drift);
    }

    fn deploy_key(created: &str, observed: &str) -> Action {
        let d = desired(
            "[github.deploy_key.flux]\nrepository = \"o/r\"\ntitle = \"flux\"\nrotate_after = \"30d\"\n",
        );
        let l = ledger(json!({"github.deploy_key.flux": entry("github.deploy_key", "7")}));
        let mut seen = live(json!({"github.deploy_key": {"objects": [{
            "id": "7", "fields": {"repository": "o/r", "title": "flux", "read_only": true},
            "attributes": {"created_at": created},
        }]}}));
        seen.observed_at = Some(observed.into());
        let (p, _) = plan_ok(&d, &l, &seen);
        let c = change_of(&p, "github.deploy_key.flux");
        if c.action == Action::Replace {
            assert!(
                c.fields
                    .iter()
                    .any(|f| f.path == "rotate_after" && f.forces_replacement)
            );
        }
        c.action
    }

    #[test]
    fn rotation_is_due_once_the_object_is_older_than_rotate_after() {
        assert_eq!(
            deploy_key("2026-01-01T00:00:00Z", "2026-01-30T00:00:00Z"),
            Action::NoOp
        );
        assert_eq!(
            deploy_key("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z"),
            Action::Replace
        );
    }

    const CLUSTER: &str = "[digitalocean.kubernetes_cluster.c]\nname = \"c\"\nregion = \"nyc3\"\nversion = \"1.33\"\n{EXPIRY}\n[digitalocean.kubernetes_cluster.c.node_pools.workers]\nsize = \"s-2vcpu-4gb\"\ncount = 2\n\n[github.actions_secret.kube]\nrepository = \"o/r\"\nname = \"kubeconfig\"\nvalue = \"${digitalocean.kubernetes_cluster.c.kubeconfig}\"\n";

    /// Whether the kubeconfig written at `written` is due again at `now`.
    fn kubeconfig_due(expiry: &str, written: &str, now: &str) -> bool {
        let d = desired(&CLUSTER.replace("{EXPIRY}", expiry));
        let mut e: LedgerEntry =
            serde_json::from_value(entry("github.actions_secret", "s")).expect("entry");
        e.updated_at = Some(written.into());
        let seen = LiveState {
            observed_at: Some(now.into()),
            ..LiveState::default()
        };
        let l = Ledger::new("l");
        let p = Planner::new(&d, &l, &seen);
        let consumer = &d.resources[&addr("github.actions_secret.kube")];
        let Some(SecretSource::Ref(reference)) = consumer.spec.secret("value") else {
            panic!("a reference");
        };
        p.expiring(reference, Some(&e))
    }

    #[test]
    fn a_kubeconfig_is_written_again_after_two_thirds_of_its_lifetime() {
        // Seven days by default: due after four days and sixteen hours.
        assert!(!kubeconfig_due(
            "",
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00Z"
        ));
        assert!(kubeconfig_due(
            "",
            "2026-01-01T00:00:00Z",
            "2026-01-05T17:00:00Z"
        ));
        // The cluster's own lifetime: three days, due after two.
        assert!(kubeconfig_due(
            "kubeconfig_expiry = \"3d\"",
            "2026-01-01T00:00:00Z",
            "2026-01-03T00:00:00Z"
        ));
        assert!(!kubeconfig_due(
            "kubeconfig_expiry = \"3d\"",
            "2026-01-01T00:00:00Z",
            "2026-01-02T23:00:00Z"
        ));
    }

    #[test]
    fn a_consumer_that_needs_an_unrecoverable_output_anew_asks_its_producer_for_a_new_one() {
        let text = "[github.deploy_key.flux]\nrepository = \"o/r\"\ntitle = \"flux\"\n\n[github.actions_secret.key]\nrepository = \"o/r\"\nname = \"flux_key\"\nvalue = \"${github.deploy_key.flux.private_key}\"\n";
        let d = desired(text);
        let l = Ledger::new("l");
        let seen = LiveState::default();
        let consumer = &d.resources[&addr("github.actions_secret.key")];
        let Some(SecretSource::Ref(reference)) = consumer.spec.secret("value") else {
            panic!("a reference");
        };
        let mut p = Planner::new(&d, &l, &seen);
        p.need_new_from(reference, &consumer.address);
        assert_eq!(
            p.needs_new,
            [(addr("github.deploy_key.flux"), consumer.address.clone())]
        );
        // A producer already replaced in this apply makes a new one anyway.
        let mut again = d.clone();
        again.replace.insert(addr("github.deploy_key.flux"));
        let mut p = Planner::new(&again, &l, &seen);
        p.need_new_from(reference, &consumer.address);
        assert!(p.needs_new.is_empty());
    }
}
