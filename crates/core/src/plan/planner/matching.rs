//! Matching: which live object a desired resource is: the one its ledger entry records, or
//! one found by natural key, which is adopted only with proof that this ledger made it (its
//! lineage marker, a write-ahead intent, a rename) or the user's word; and the leftovers of
//! interrupted creates that share its key.

use super::{FastMap, Planner, key_of};
use crate::desired::kinds::Kind;
use crate::desired::{Address, Resource};
use crate::ledger::LedgerEntry;
use crate::live::LiveObject;
use crate::plan::resolve::Resolved;

/// Whether an object found by name may be adopted.
pub(super) enum Adoption {
    /// Yes, and why.
    Proven(&'static str),
    /// It is this ledger's (marker or intent), but its unrecoverable output (named) was
    /// never delivered: replace it.
    ReplaceLeftover(&'static str),
    /// No: a conflict, with the reason and what to do.
    Refused(String),
}

impl<'a> Planner<'a> {
    pub(super) fn by_key(&self, kind: Kind) -> &FastMap<String, &'a LiveObject> {
        let live = self.live;
        &self.by_key.get_or_init(|| {
            Kind::ALL
                .iter()
                .map(|k| {
                    let mut m = FastMap::default();
                    for o in live.objects(*k) {
                        if let Some(key) = k.natural_key(&o.fields) {
                            m.entry(key).or_insert(o);
                        }
                    }
                    m
                })
                .collect()
        })[kind.index()]
    }

    pub(super) fn find_live(
        &self,
        kind: Kind,
        entry: Option<&'a LedgerEntry>,
        fields: &[Option<Resolved<'_>>],
    ) -> (Option<&'a LiveObject>, bool) {
        if let Some(e) = entry
            && let Some(o) = self.by_id[kind.index()].get(e.id.as_str())
        {
            return (Some(o), false);
        }
        if self.by_id[kind.index()].is_empty() {
            // Nothing of this kind exists: nothing to find by name.
            return (None, false);
        }
        let compared = kind.compared_fields();
        let key = kind.natural_key_by(|name| {
            let i = compared.iter().position(|f| f.name == name)?;
            match &fields[i] {
                Some(Resolved::Known(v)) => Some(v.as_ref()),
                _ => None,
            }
        });
        match key.and_then(|k| self.by_key(kind).get(&k).copied()) {
            // An object another desired resource owns or already matched is not up for
            // adoption, whatever its name says (it may be mid-rename).
            Some(o)
                if self.claimed.contains(&(kind, o.id.as_str()))
                    || self.owned_by_other(kind, &o.id, entry) =>
            {
                (None, false)
            }
            // Found by name: adopted unless the ledger already owns that very object.
            Some(o) => (Some(o), entry.is_none_or(|e| e.id != o.id)),
            None => (None, false),
        }
    }

    /// True when a ledger entry of another still-desired address owns the object. Looked up
    /// in an index built once, so matching stays linear in the number of resources.
    pub(super) fn owned_by_other(&self, kind: Kind, id: &str, mine: Option<&LedgerEntry>) -> bool {
        let owners = self.owners.get_or_init(|| {
            let mut owners: FastMap<(&str, &str), Vec<(&Address, &LedgerEntry)>> =
                FastMap::default();
            let desired = self
                .entries
                .iter()
                .zip(&self.resources)
                .filter_map(|(e, r)| e.map(|e| (&r.address, e)));
            for (a, e) in desired.chain(self.removed.iter().copied()) {
                owners
                    .entry((e.kind.as_str(), e.id.as_str()))
                    .or_default()
                    .push((a, e));
            }
            owners
        });
        let kind_name = kind.to_string();
        owners.get(&(kind_name.as_str(), id)).is_some_and(|owners| {
            owners.iter().any(|(a, e)| {
                self.index.contains_key(&key_of(a)) && !mine.is_some_and(|m| std::ptr::eq(m, *e))
            })
        })
    }

    /// Whether an object found by name (not by the ledger's id) may be adopted by desired
    /// resource `i`. Only with proof: this ledger's lineage marker on the object, this
    /// ledger's write-ahead intent for the address (a create that was interrupted), or the
    /// user's word (`lifecycle.adopt`). An object marked by another ledger, or whose
    /// unrecoverable secret output something reads, is never adopted.
    pub(super) fn adoption(&self, i: usize, o: &LiveObject) -> Adoption {
        let r = self.resources[i];
        let (kind, address, id) = (r.kind(), &r.address, &o.id);
        let lineage = self.ledger.lineage.as_str();
        let marker = o.lineage();
        if let Some(theirs) = marker.filter(|l| *l != lineage) {
            return Adoption::Refused(format!(
                "{kind} {id} has this name but was created by another provisioner ledger (lineage {theirs}): not adopted, never deleted. Rename this resource, or move the object deliberately (`provisioner state forget` in that ledger, then `provisioner state import {address} {id}` here)"
            ));
        }
        let ours = !lineage.is_empty() && marker == Some(lineage);
        let intent = self.desired_pending(address);
        // Recorded by this ledger under an address that left the desired state: a rename.
        let renamed = self
            .removed
            .iter()
            .any(|(_, e)| e.kind == kind.key() && e.id == *id);
        if let Some((output, consumer)) = self.unreadable_output(r) {
            if renamed {
                return Adoption::Proven(
                    "the ledger records it under an address that left the desired state",
                );
            }
            return if ours || intent {
                Adoption::ReplaceLeftover(output)
            } else {
                Adoption::Refused(format!(
                    "{kind} {id} has this name, but this ledger did not create it, and its `{output}`, which {consumer} reads, cannot be read back from the cloud: it cannot be adopted. Rename this resource (its {}), or delete that object yourself if nothing uses it",
                    kind.key_fields()
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
        }
        if ours {
            Adoption::Proven("it carries this ledger's lineage")
        } else if renamed {
            Adoption::Proven("the ledger records it under an address that left the desired state")
        } else if intent {
            Adoption::Proven("after an interrupted create")
        } else if r.lifecycle.adopt {
            Adoption::Proven("lifecycle.adopt")
        } else {
            let marked = if kind.carries_lineage() {
                "it carries no lineage marker of this ledger"
            } else {
                "this kind cannot carry a lineage marker, and the ledger has no record of it"
            };
            Adoption::Refused(format!(
                "{kind} {id} has this name, but nothing proves this ledger made it ({marked}): not adopted. To manage it, set `lifecycle.adopt = true` on {address} or run `provisioner state import {address} {id}`; otherwise rename this resource"
            ))
        }
    }

    /// A secret output of `r` that another desired resource reads and that the cloud cannot
    /// give back (a deploy key's private key, an SMTP password), with its first reader.
    pub(super) fn unreadable_output(&self, r: &Resource) -> Option<(&'static str, &'a Address)> {
        self.resources.iter().find_map(|c| {
            c.references.iter().find_map(|(_, reference)| {
                if reference.address != r.address {
                    return None;
                }
                r.kind()
                    .unrecoverable(&reference.attribute)
                    .map(|out| (out, &c.address))
            })
        })
    }

    /// Objects with the same natural key as `object` (the one this resource keeps) that
    /// nothing else claims or owns and that carry no other ledger's lineage, by id.
    pub(super) fn leftovers(
        &self,
        kind: Kind,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Vec<String> {
        let Some(key) = kind.natural_key(&object.fields) else {
            return Vec::new();
        };
        let mut out: Vec<String> = self
            .live
            .objects(kind)
            .iter()
            .filter(|o| o.id != object.id)
            .filter(|o| kind.natural_key(&o.fields).as_deref() == Some(key.as_str()))
            .filter(|o| !self.claimed.contains(&(kind, o.id.as_str())))
            .filter(|o| !self.owned_by_other(kind, &o.id, entry))
            .filter(|o| {
                self.ledger
                    .resources
                    .values()
                    .all(|e| !(e.kind == kind.key() && e.id == o.id))
            })
            .filter(|o| o.lineage().is_none_or(|l| l == self.ledger.lineage))
            .map(|o| o.id.clone())
            .collect();
        out.sort();
        out
    }

    /// True when the ledger holds a write-ahead intent for the address.
    pub(super) fn desired_pending(&self, address: &Address) -> bool {
        self.ledger.pending.contains_key(address)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::Ledger;
    use crate::live::LiveState;
    use crate::plan::model::Action;
    use crate::plan::planner::testing::{VPC, change_of, desired, entry, ledger, live, plan_ok};
    use crate::plan::resolve::{Attributes, wanted};

    /// What `find_live` says for desired resource `i`.
    fn found(
        d: &crate::desired::DesiredState,
        l: &Ledger,
        seen: &LiveState,
        i: usize,
    ) -> (Option<String>, bool) {
        let p = Planner::new(d, l, seen);
        let r = p.resources[i];
        let fields = wanted(r.kind(), &r.spec_json, &Attributes::new());
        let (o, adopt) = p.find_live(r.kind(), p.entries[i], &fields);
        (o.map(|o| o.id.clone()), adopt)
    }

    fn vpcs(objects: serde_json::Value) -> LiveState {
        live(json!({"digitalocean.vpc": {"objects": objects}}))
    }

    #[test]
    fn the_ledgers_id_wins_over_the_name() {
        let l = ledger(json!({"digitalocean.vpc.main": entry("digitalocean.vpc", "v1")}));
        let seen = vpcs(json!([
            {"id": "v1", "fields": {"name": "renamed-by-hand"}},
            {"id": "v2", "fields": {"name": "prod"}},
        ]));
        assert_eq!(
            found(&desired(VPC), &l, &seen, 0),
            (Some("v1".into()), false)
        );
    }

    #[test]
    fn an_object_found_by_natural_key_is_up_for_adoption() {
        let seen = vpcs(json!([{"id": "v2", "fields": {"name": "prod"}}]));
        assert_eq!(
            found(&desired(VPC), &Ledger::new("l"), &seen, 0),
            (Some("v2".into()), true)
        );
        let other = vpcs(json!([{"id": "v2", "fields": {"name": "staging"}}]));
        assert_eq!(
            found(&desired(VPC), &Ledger::new("l"), &other, 0),
            (None, false)
        );
    }

    #[test]
    fn an_object_another_desired_resource_owns_is_not_matched_by_name() {
        // `a` is being renamed from `prod` to `other`; `b` now wants the name `prod`.
        let d = desired(
            "[digitalocean.vpc.a]\nname = \"other\"\nregion = \"nyc3\"\n\n[digitalocean.vpc.b]\nname = \"prod\"\nregion = \"nyc3\"\n",
        );
        let l = ledger(json!({"digitalocean.vpc.a": entry("digitalocean.vpc", "v1")}));
        let seen = vpcs(json!([{"id": "v1", "fields": {"name": "prod", "region": "nyc3"}}]));
        assert_eq!(found(&d, &l, &seen, 1), (None, false));
        let (p, _) = plan_ok(&d, &l, &seen);
        assert_eq!(change_of(&p, "digitalocean.vpc.a").action, Action::Update);
        assert_eq!(change_of(&p, "digitalocean.vpc.b").action, Action::Create);
    }

    #[test]
    fn a_github_object_is_matched_ignoring_the_case_github_ignores_but_adopted_only_on_proof() {
        let var = "[github.actions_variable.v]\nrepository = \"Org/Repo\"\nname = \"region\"\nvalue = \"nyc3\"\n";
        let seen = live(json!({"github.actions_variable": {"objects": [
            {"id": "x", "fields": {"repository": "org/repo", "name": "REGION", "value": "nyc3"}}
        ]}}));
        let (p, _) = plan_ok(&desired(var), &Ledger::new("l"), &seen);
        let c = change_of(&p, "github.actions_variable.v");
        assert_eq!(c.action, Action::Conflict);
        assert!(
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("cannot carry a lineage marker")),
            "{:?}",
            c.reason
        );
        let adopt = format!("{var}lifecycle = {{ adopt = true }}\n");
        let (p, _) = plan_ok(&desired(&adopt), &Ledger::new("l"), &seen);
        let c = change_of(&p, "github.actions_variable.v");
        assert_eq!(c.action, Action::Adopt);
        assert!(
            c.fields.is_empty(),
            "case alone is no drift: {:?}",
            c.fields
        );
    }

    #[test]
    fn a_lineage_marker_proves_ours_and_refuses_another_ledgers() {
        let topic = desired("[aws.sns_topic.t]\nname = \"events\"\n");
        let seen = |lineage: &str| {
            live(json!({"aws.sns_topic": {"objects": [
                {"id": "arn:t", "fields": {"name": "events"}, "tags": [format!("provisioner:lineage:{lineage}")]}
            ]}}))
        };
        let (p, _) = plan_ok(&topic, &Ledger::new("l"), &seen("l"));
        let c = change_of(&p, "aws.sns_topic.t");
        assert_eq!(c.action, Action::Adopt);
        assert!(c.reason.as_deref().is_some_and(|r| r.contains("lineage")));
        let (p, _) = plan_ok(&topic, &Ledger::new("l"), &seen("someone-else"));
        let c = change_of(&p, "aws.sns_topic.t");
        assert_eq!(c.action, Action::Conflict);
        assert!(
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("lineage someone-else")),
            "{:?}",
            c.reason
        );
    }
}
