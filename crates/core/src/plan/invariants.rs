//! Checks every plan in tests must pass (after omicron's blueprint verifier): no address
//! twice, no delete of anything the ledger does not own, every reference resolvable,
//! dependencies scheduled before their dependants.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Action, Plan};
use crate::desired::DesiredState;
use crate::ledger::Ledger;

/// Returns every broken invariant.
pub fn check_plan_invariants(
    plan: &Plan,
    desired: &DesiredState,
    ledger: &Ledger,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let waves: BTreeMap<_, _> = plan.changes.iter().map(|c| (&c.address, c.wave)).collect();
    for c in &plan.changes {
        if !seen.insert(&c.address) {
            problems.push(format!("{} appears twice", c.address));
        }
        if c.action == Action::Delete {
            match ledger.resources.get(&c.address) {
                Some(e) if Some(&e.id) == c.cloud_id.as_ref() => {}
                _ => problems.push(format!(
                    "{} is deleted but the ledger does not own that object",
                    c.address
                )),
            }
            if desired.resources.contains_key(&c.address) {
                problems.push(format!("{} is deleted while still desired", c.address));
            }
            if !desired.settings.prune {
                problems.push(format!("{} is deleted with prune off", c.address));
            }
        }
        if let Some(r) = desired.resources.get(&c.address) {
            for (_, reference) in &r.references {
                if !desired.resources.contains_key(&reference.address) {
                    problems.push(format!(
                        "{} refers to {} which is not desired",
                        c.address, reference.address
                    ));
                }
            }
        }
        for dep in &c.after {
            match waves.get(dep) {
                Some(w) if *w < c.wave => {}
                _ => problems.push(format!(
                    "{} runs before or beside its dependency {dep}",
                    c.address
                )),
            }
        }
        if c.action.acts()
            && c.action != Action::Delete
            && let Some(r) = desired.resources.get(&c.address)
        {
            for d in &r.depends_on {
                if let Some(dc) = plan
                    .changes
                    .iter()
                    .find(|x| &x.address == d && x.action.acts())
                    && dc.wave >= c.wave
                {
                    problems.push(format!("{} is not scheduled after {d}", c.address));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
