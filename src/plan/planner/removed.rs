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
                None
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
