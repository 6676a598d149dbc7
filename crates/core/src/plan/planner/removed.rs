//! What left the desired state: ledger entries of removed resources, and write-ahead intents
//! of creates that were interrupted before the resource was removed.

use super::{Planner, change, entry_in, intent_in, key_of};
use crate::desired::kinds::Kind;
use crate::plan::model::{Action, Cause};

impl Planner<'_> {
    /// Ledger entries no longer desired: deleted with `prune`, orphaned without; dropped
    /// when already gone or now managed under another address; left alone where they
    /// could not be observed.
    pub(super) fn plan_removed(&mut self) {
        for (address, entry) in std::mem::take(&mut self.removed) {
            let Some(kind) = Kind::parse(&entry.kind) else {
                self.note(
                    address,
                    format!("the ledger names unknown kind `{}`; left alone", entry.kind),
                );
                continue;
            };
            // Unknown is not absent: an entry in a scope that could not be observed is
            // neither deleted nor dropped.
            if self.failed[kind.index()]
                || self
                    .live
                    .failed_scopes(kind)
                    .iter()
                    .any(|scope| entry_in(entry, scope))
            {
                continue;
            }
            let exists = self.by_id[kind.index()].contains_key(entry.id.as_str());
            if !exists {
                self.note(address, "removed from the desired state and already gone from the cloud: dropped from the ledger");
                continue;
            }
            if self.claimed.contains(&(kind, entry.id.as_str())) {
                self.note(address, "its object is now managed under another address: dropped from the ledger, not deleted");
                continue;
            }
            let action = if self.desired.settings.prune {
                Action::Delete
            } else {
                Action::Orphan
            };
            if action == Action::Delete
                && entry.prevent_destroy
                && !self.desired.allow_destroy.contains(address)
            {
                self.protected.push((address.clone(), format!("removed from the desired state, but prevent_destroy was set when it was last applied; to delete it deliberately: `provisioner apply --allow-destroy {address}`")));
            }
            let reason = if action == Action::Orphan {
                Some(
                    "removed from the desired state; prune is off, so it is left alone".to_string(),
                )
            } else {
                kind.on_delete().map(|w| format!("warning: {w}"))
            };
            let mut c = change(
                address.clone(),
                action,
                Some(entry.id.clone()),
                Vec::new(),
                reason,
            );
            if action == Action::Delete {
                // Kept for ordering deletes: what this one needed before it.
                c.after = entry.depends_on.iter().cloned().collect();
            }
            self.removed_changes.push(c);
        }
    }

    /// Write-ahead intents of resources no longer desired: a create was interrupted (the
    /// process died between the create and recording it) and the resource was removed from
    /// the desired state since. The object it may have left is found by the intent's natural
    /// key and deleted (with `prune`) or reported as an orphan, so nothing is left behind
    /// unnoticed.
    pub(super) fn plan_interrupted(&mut self) {
        let ledger = self.ledger;
        for (address, intent) in &ledger.pending {
            if self.index.contains_key(&key_of(address)) || ledger.resources.contains_key(address) {
                continue;
            }
            let Some(kind) = Kind::parse(&intent.kind) else {
                continue;
            };
            if self.failed[kind.index()]
                || self
                    .live
                    .failed_scopes(kind)
                    .iter()
                    .any(|scope| intent_in(kind, &intent.key, scope))
            {
                continue;
            }
            let Some(object) = self.by_key(kind).get(&intent.key).copied() else {
                self.note(
                    address,
                    "an interrupted create left nothing behind and the resource is no longer desired: forgotten",
                );
                continue;
            };
            let foreign = object.lineage().is_some_and(|l| l != self.ledger.lineage);
            let owned = self
                .ledger
                .resources
                .values()
                .any(|e| e.kind == intent.kind && e.id == object.id);
            if foreign || owned || self.claimed.contains(&(kind, object.id.as_str())) {
                self.note(
                    address,
                    "an interrupted create's object belongs to something else now: forgotten, not deleted",
                );
                continue;
            }
            let action = if self.desired.settings.prune {
                Action::Delete
            } else {
                Action::Orphan
            };
            let reason = if action == Action::Delete {
                "left by an interrupted create; no longer desired"
            } else {
                "left by an interrupted create; no longer desired, and prune is off, so it is left alone"
            };
            let mut c = change(
                address.clone(),
                action,
                Some(object.id.clone()),
                Vec::new(),
                Some(reason.to_string()),
            );
            c.cause = Cause::Recovery;
            self.removed_changes.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ledger::{Intent, Ledger};
    use crate::live::LiveState;
    use crate::plan::model::{Action, Cause, PlanError};
    use crate::plan::planner::testing::{
        VPC, addr, change_of, desired, entry, ledger, live, plan_ok,
    };

    const PRUNE: &str = "[settings]\nprune = true\n\n";

    fn old_vpc() -> (Ledger, LiveState) {
        let l = ledger(json!({"digitalocean.vpc.old": entry("digitalocean.vpc", "v-old")}));
        let seen = live(json!({"digitalocean.vpc": {"objects": [
            {"id": "v-old", "fields": {"name": "old", "region": "nyc3"}}
        ]}}));
        (l, seen)
    }

    fn notes(r: &crate::plan::PlanReport) -> String {
        r.notes
            .iter()
            .map(|n| format!("{}: {}\n", n.subject, n.message))
            .collect()
    }

    #[test]
    fn a_removed_resource_is_orphaned_without_prune_and_deleted_with_it() {
        let (l, seen) = old_vpc();
        let (p, _) = plan_ok(&desired(VPC), &l, &seen);
        let c = change_of(&p, "digitalocean.vpc.old");
        assert_eq!(
            (c.action, c.cloud_id.as_deref()),
            (Action::Orphan, Some("v-old"))
        );
        assert!(
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("prune is off"))
        );
        let (p, _) = plan_ok(&desired(&format!("{PRUNE}{VPC}")), &l, &seen);
        assert_eq!(change_of(&p, "digitalocean.vpc.old").action, Action::Delete);
    }

    #[test]
    fn a_removed_resource_already_gone_is_dropped_with_a_note() {
        let (l, _) = old_vpc();
        let (p, r) = plan_ok(
            &desired(&format!("{PRUNE}{VPC}")),
            &l,
            &LiveState::default(),
        );
        assert!(
            p.changes
                .iter()
                .all(|c| c.address != addr("digitalocean.vpc.old"))
        );
        assert!(
            notes(&r)
                .contains("digitalocean.vpc.old: removed from the desired state and already gone"),
            "{}",
            notes(&r)
        );
    }

    #[test]
    fn a_removed_resource_that_could_not_be_observed_is_neither_deleted_nor_dropped() {
        let (l, _) = old_vpc();
        let seen = live(json!({"digitalocean.vpc": {"status": {"failed": "503"}}}));
        let (p, r) = plan_ok(
            &desired(&format!(
                "{PRUNE}[digitalocean.domain.d]\nname = \"example.com\"\n"
            )),
            &l,
            &seen,
        );
        assert!(
            p.changes
                .iter()
                .all(|c| c.address != addr("digitalocean.vpc.old"))
        );
        assert!(!notes(&r).contains("vpc.old"));
        assert!(r.unobserved.iter().any(|u| u.kind == "digitalocean.vpc"));
    }

    #[test]
    fn deleting_a_removed_resource_protected_when_last_applied_is_an_error() {
        let (mut l, seen) = old_vpc();
        l.resources
            .get_mut(&addr("digitalocean.vpc.old"))
            .expect("entry")
            .prevent_destroy = true;
        let err = crate::plan::plan(&desired(&format!("{PRUNE}{VPC}")), &l, &seen)
            .expect_err("protected");
        let PlanError::PreventDestroy(list) = err;
        assert_eq!(list[0].0, addr("digitalocean.vpc.old"));
        // Without prune nothing is deleted, so nothing is refused.
        assert!(crate::plan::plan(&desired(VPC), &l, &seen).is_ok());
    }

    #[test]
    fn a_removed_entry_whose_object_another_address_now_manages_is_dropped_not_deleted() {
        let (l, seen) = old_vpc();
        let renamed = desired(&format!(
            "{PRUNE}[digitalocean.vpc.new]\nname = \"old\"\nregion = \"nyc3\"\n"
        ));
        let (p, r) = plan_ok(&renamed, &l, &seen);
        assert_eq!(change_of(&p, "digitalocean.vpc.new").action, Action::Adopt);
        assert!(
            p.changes
                .iter()
                .all(|c| c.address != addr("digitalocean.vpc.old"))
        );
        assert!(
            notes(&r).contains("now managed under another address"),
            "{}",
            notes(&r)
        );
    }

    #[test]
    fn an_interrupted_create_no_longer_desired_is_deleted_by_its_key_or_forgotten() {
        let mut l = Ledger::new("l");
        l.pending.insert(
            addr("digitalocean.vpc.gone"),
            Intent {
                kind: "digitalocean.vpc".into(),
                key: "left".into(),
                at: None,
            },
        );
        let seen = live(
            json!({"digitalocean.vpc": {"objects": [{"id": "v9", "fields": {"name": "left"}}]}}),
        );
        let (p, _) = plan_ok(&desired(&format!("{PRUNE}{VPC}")), &l, &seen);
        let c = change_of(&p, "digitalocean.vpc.gone");
        assert_eq!(
            (c.action, c.cause, c.cloud_id.as_deref()),
            (Action::Delete, Cause::Recovery, Some("v9"))
        );
        let (p, _) = plan_ok(&desired(VPC), &l, &seen);
        assert_eq!(
            change_of(&p, "digitalocean.vpc.gone").action,
            Action::Orphan
        );
        let (p, r) = plan_ok(&desired(VPC), &l, &LiveState::default());
        assert!(
            p.changes
                .iter()
                .all(|c| c.address != addr("digitalocean.vpc.gone"))
        );
        assert!(notes(&r).contains("left nothing behind"));
    }
}
