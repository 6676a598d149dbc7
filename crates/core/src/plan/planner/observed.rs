//! What could not be observed: the kinds and scopes the plan needed and did not see, and
//! whether a desired resource, a ledger entry or a write-ahead intent lies in one. Unknown is
//! never absent: what lies there is neither planned nor deleted.

use serde_json::Value;

use super::Planner;
use crate::desired::Resource;
use crate::desired::kinds::Kind;
use crate::desired::kinds::identity::KEY_SEPARATOR;
use crate::ledger::LedgerEntry;
use crate::live::FailedScope;
use crate::plan::model::Unobserved;
use crate::plan::resolve::{Resolved, resolve};

impl Planner<'_> {
    /// Every kind the plan needed (the desired state, the ledger or a write-ahead intent has
    /// something of it) that could not be observed, and every such scope of a kind observed
    /// elsewhere: reported, and they make the plan incomplete.
    pub(super) fn unobserved(&self) -> Vec<Unobserved> {
        let mut unobserved = Vec::new();
        for kind in Kind::ALL {
            if let Some(reason) = self.live.failure(*kind) {
                let key = kind.key();
                let has_any = self.resources.iter().any(|r| r.kind() == *kind)
                    || self.ledger.resources.values().any(|e| e.kind == key)
                    || self.ledger.pending.values().any(|p| p.kind == key);
                if has_any {
                    unobserved.push(Unobserved {
                        kind: key.to_string(),
                        scope: None,
                        reason: reason.to_string(),
                    });
                }
                continue;
            }
            // A kind observed except some scopes (one repository, one zone): each scope
            // that holds something the plan needed is reported.
            for scope in self.live.failed_scopes(*kind) {
                let key = kind.key();
                let has_any = self
                    .resources
                    .iter()
                    .any(|r| r.kind() == *kind && self.resource_in(r, scope))
                    || self
                        .ledger
                        .resources
                        .values()
                        .any(|e| e.kind == key && entry_in(e, scope))
                    || self
                        .ledger
                        .pending
                        .values()
                        .any(|p| p.kind == key && intent_in(*kind, &p.key, scope));
                if has_any {
                    unobserved.push(Unobserved {
                        kind: key.to_string(),
                        scope: Some(scope.scope.clone()),
                        reason: scope.reason.clone(),
                    });
                }
            }
        }
        unobserved.sort();
        unobserved.dedup();
        unobserved
    }

    /// True when the resource's kind, and the scope it lies in, were observed.
    pub(super) fn is_observed(&self, r: &Resource) -> bool {
        let kind = r.kind();
        !self.failed[kind.index()]
            && !self
                .live
                .failed_scopes(kind)
                .iter()
                .any(|scope| self.resource_in(r, scope))
    }

    /// Whether desired resource `r` lies in a scope that could not be observed, by its
    /// desired fields (references resolved where they can be: an unknown one may lie
    /// anywhere, so it counts as inside).
    fn resource_in(&self, r: &Resource, scope: &FailedScope) -> bool {
        scope.contains(|field| match r.spec_json.get(field) {
            None | Some(Value::Null) => Some(None),
            Some(v) => match resolve(v, self) {
                Resolved::Known(v) => Some(Some(match v.as_ref() {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
                Resolved::Unknown => None,
            },
        })
    }
}

/// Whether a ledger entry lies in a scope that could not be observed, by the fields it was
/// last applied with.
pub fn entry_in(entry: &LedgerEntry, scope: &FailedScope) -> bool {
    scope.contains(|field| match entry.applied.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.contains("${") => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(v) => Some(Some(v.to_string())),
    })
}

/// Whether a write-ahead intent lies in a scope that could not be observed, by its natural
/// key (the key fields joined as [`Kind::natural_key`] joins them); a scope field that is not part
/// of the key may hold anything, so it counts as inside.
pub fn intent_in(kind: Kind, key: &str, scope: &FailedScope) -> bool {
    let parts: Vec<&str> = key.split(KEY_SEPARATOR).collect();
    scope.contains(|field| {
        let i = kind.key_fields().iter().position(|f| *f == field)?;
        match parts.get(i) {
            Some(&"") => Some(None),
            Some(p) => Some(Some(p.to_string())),
            None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::Ledger;
    use crate::plan::planner::testing::{VPC, desired, entry, live, plan_ok};

    fn scope(field: &str, value: &str) -> FailedScope {
        FailedScope::new([(field, value.to_string())], "403")
    }

    #[test]
    fn an_intent_lies_in_a_scope_by_its_key_fields_ignoring_case() {
        let key = "o/r\u{1f}PROD\u{1f}TOKEN";
        assert!(intent_in(
            Kind::GhEnvironmentSecret,
            key,
            &scope("repository", "O/R")
        ));
        assert!(!intent_in(
            Kind::GhEnvironmentSecret,
            key,
            &scope("repository", "o/other")
        ));
        // A scope field outside the key may hold anything: inside.
        assert!(intent_in(
            Kind::GhActionsSecret,
            "o/r\u{1f}TOKEN",
            &scope("environment", "prod")
        ));
    }

    #[test]
    fn an_entry_lies_in_a_scope_by_the_fields_it_was_last_applied_with() {
        let mut e: LedgerEntry =
            serde_json::from_value(entry("digitalocean.domain_record", "1")).expect("entry");
        assert!(
            !entry_in(&e, &scope("domain", "example.com")),
            "absent is outside"
        );
        e.applied.insert("domain".into(), json!("Example.com"));
        assert!(entry_in(&e, &scope("domain", "example.com")));
        e.applied
            .insert("domain".into(), json!("${digitalocean.domain.d.name}"));
        assert!(
            entry_in(&e, &scope("domain", "other.org")),
            "unknown is inside"
        );
    }

    #[test]
    fn only_kinds_the_plan_needs_are_reported_unobserved() {
        let seen = live(json!({
            "digitalocean.vpc": {"status": {"failed": "503"}},
            "aws.sns_topic": {"status": {"failed": "throttled"}},
        }));
        let (p, r) = plan_ok(&desired(VPC), &Ledger::new("l"), &seen);
        let kinds: Vec<&str> = r.unobserved.iter().map(|u| u.kind.as_str()).collect();
        assert_eq!(kinds, ["digitalocean.vpc"]);
        assert!(
            p.changes.is_empty(),
            "unknown is not absent: nothing is created"
        );
    }

    #[test]
    fn a_resource_in_a_failed_scope_is_not_planned_and_the_scope_is_reported() {
        let d = desired(
            "[github.actions_variable.a]\nrepository = \"o/r\"\nname = \"a\"\nvalue = \"1\"\n\n[github.actions_variable.b]\nrepository = \"o/s\"\nname = \"b\"\nvalue = \"1\"\n",
        );
        let seen = live(json!({"github.actions_variable": {"failed_scopes": [
            {"scope": {"repository": "O/R"}, "reason": "403"}
        ]}}));
        let l = Ledger::new("l");
        let planner = Planner::new(&d, &l, &seen);
        assert!(!planner.is_observed(planner.resources[0]));
        assert!(planner.is_observed(planner.resources[1]));
        let (p, r) = plan_ok(&d, &l, &seen);
        let planned: Vec<String> = p.changes.iter().map(|c| c.address.to_string()).collect();
        assert_eq!(planned, ["github.actions_variable.b"]);
        assert_eq!(r.unobserved.len(), 1);
        assert_eq!(
            r.unobserved[0]
                .scope
                .as_ref()
                .map(|s| s["repository"].as_str()),
            Some("O/R")
        );
    }
}
