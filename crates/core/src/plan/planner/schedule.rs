//! Scheduling: the order resources are planned in (dependencies first), and the waves the
//! executor runs changes in.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::{FastMap, Planner};
use crate::desired::Address;
use crate::plan::model::{Action, Change, PLAN_FORMAT_VERSION, Plan};

/// Edges between resource numbers, stored flat (one allocation, not one per resource).
pub(super) struct Graph {
    /// `targets[starts[i]..starts[i + 1]]` are the edges of node `i`.
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Graph {
    pub(super) fn from_lists<I: IntoIterator<Item = usize>>(
        lists: impl Iterator<Item = I>,
    ) -> Self {
        let mut starts = vec![0];
        let mut targets = Vec::new();
        for list in lists {
            targets.extend(list);
            starts.push(targets.len());
        }
        Graph { starts, targets }
    }

    pub(super) fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub(super) fn edges(&self, i: usize) -> &[usize] {
        &self.targets[self.starts[i]..self.starts[i + 1]]
    }

    /// The same graph with every edge turned around.
    fn reversed(&self) -> Graph {
        let mut counts = vec![0usize; self.len() + 1];
        for &t in &self.targets {
            counts[t + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut next = counts;
        let mut targets = vec![0; self.targets.len()];
        for i in 0..self.len() {
            for &t in self.edges(i) {
                targets[next[t]] = i;
                next[t] += 1;
            }
        }
        Graph { starts, targets }
    }
}

/// Kahn's algorithm over resource numbers; ties go to the lowest number, which is the
/// address order, so the result is deterministic.
pub(super) fn topological_indices(deps: &Graph) -> Vec<usize> {
    let mut waiting: Vec<usize> = (0..deps.len()).map(|i| deps.edges(i).len()).collect();
    let dependants = deps.reversed();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut out = Vec::with_capacity(deps.len());
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &d in dependants.edges(i) {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    // Validation rejects cycles, so every resource was emitted.
    out
}

impl Planner<'_> {
    /// The plan: every change in waves. An acting change runs one wave after the last of
    /// the acting changes it depends on; deletes run after everything else, dependants
    /// first. Within a wave, changes stay in address order.
    pub(super) fn order_into_waves(mut self, order: &[usize]) -> Plan {
        let acting = |c: &Change| c.action.acts() && c.action != Action::Delete;
        let mut waves: Vec<Option<usize>> = vec![None; self.resources.len()];
        for &i in order {
            if !self.changes[i].as_ref().is_some_and(acting) {
                continue;
            }
            let deps: Vec<usize> = self
                .deps
                .edges(i)
                .iter()
                .copied()
                .filter(|&d| self.changes[d].as_ref().is_some_and(acting))
                .collect();
            let wave = deps
                .iter()
                .filter_map(|&d| waves[d])
                .max()
                .map_or(0, |w| w + 1);
            waves[i] = Some(wave);
            let after = deps
                .iter()
                .map(|&d| self.resources[d].address.clone())
                .collect();
            if let Some(c) = self.changes[i].as_mut() {
                c.after = after;
                c.wave = wave;
            }
        }
        // Deletes run after everything else, dependants first: a delete is ready once no
        // other pending delete depends on it.
        let first_delete_wave = waves.iter().flatten().max().map_or(0, |w| w + 1);
        let deletes: Vec<usize> = (0..self.removed_changes.len())
            .filter(|&j| self.removed_changes[j].action == Action::Delete)
            .collect();
        let position: FastMap<&Address, usize> = deletes
            .iter()
            .map(|&j| (&self.removed_changes[j].address, j))
            .collect();
        // needs[j]: the deletes j depends on; dependants[d]: deletes that depend on d.
        let mut needs: FastMap<usize, Vec<usize>> = FastMap::default();
        let mut dependants: FastMap<usize, Vec<usize>> = FastMap::default();
        for &j in &deletes {
            for d in &self.removed_changes[j].after {
                if let Some(&dj) = position.get(d)
                    && dj != j
                {
                    needs.entry(j).or_default().push(dj);
                    dependants.entry(dj).or_default().push(j);
                }
            }
        }
        let mut waiting: FastMap<usize, usize> = deletes
            .iter()
            .map(|&j| (j, dependants.get(&j).map_or(0, Vec::len)))
            .collect();
        let mut remaining: BTreeSet<usize> = deletes.iter().copied().collect();
        let mut wave = first_delete_wave;
        let mut delete_wave: FastMap<usize, usize> = FastMap::default();
        while !remaining.is_empty() {
            let mut ready: Vec<usize> = remaining
                .iter()
                .copied()
                .filter(|j| waiting[j] == 0)
                .collect();
            if ready.is_empty() {
                // A cycle in the ledger's record: break it rather than stall.
                ready = remaining.iter().copied().collect();
            }
            for &j in &ready {
                remaining.remove(&j);
                delete_wave.insert(j, wave);
            }
            for &j in &ready {
                for d in needs.get(&j).map(Vec::as_slice).unwrap_or_default() {
                    if let Some(n) = waiting.get_mut(d) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            wave += 1;
        }
        let removed_addresses: Vec<Address> = self
            .removed_changes
            .iter()
            .map(|c| c.address.clone())
            .collect();
        for (j, c) in self.removed_changes.iter_mut().enumerate() {
            if let Some(&w) = delete_wave.get(&j) {
                c.wave = w;
                let mut after: Vec<Address> = dependants
                    .get(&j)
                    .map(|ds| ds.iter().map(|&d| removed_addresses[d].clone()).collect())
                    .unwrap_or_default();
                after.sort();
                c.after = after;
            }
        }
        // Both lists are in address order: merge them, then order by wave (a stable sort,
        // so addresses stay sorted within a wave).
        let mut changes = Vec::with_capacity(self.resources.len() + self.removed_changes.len());
        let mut kept = std::mem::take(&mut self.changes)
            .into_iter()
            .flatten()
            .peekable();
        for c in std::mem::take(&mut self.removed_changes) {
            while let Some(k) = kept.next_if(|k| k.address < c.address) {
                changes.push(k);
            }
            changes.push(c);
        }
        changes.extend(kept);
        changes.sort_by_key(|c| c.wave);
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            environment: self.desired.environment_name().map(str::to_string),
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::Ledger;
    use crate::live::LiveState;
    use crate::plan::planner::testing::{
        VPC, addr, change_of, desired, entry, ledger, live, plan_ok,
    };

    const VARIABLE: &str = "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"vpc\"\nvalue = \"${digitalocean.vpc.main.id}\"\n";

    #[test]
    fn dependencies_come_first_and_ties_go_to_the_lowest_number() {
        // 0 needs 2; 1 and 2 need nothing; 3 needs 0 and 1.
        let g = Graph::from_lists([vec![2], vec![], vec![], vec![0, 1]].into_iter());
        assert_eq!(topological_indices(&g), [1, 2, 0, 3]);
        let r = g.reversed();
        assert_eq!(
            (r.edges(0), r.edges(1), r.edges(2), r.edges(3)),
            (&[3][..], &[3][..], &[0][..], &[][..])
        );
    }

    #[test]
    fn a_change_runs_one_wave_after_the_acting_changes_it_depends_on() {
        let d = desired(&format!("{VPC}\n{VARIABLE}"));
        let (p, _) = plan_ok(&d, &Ledger::new("l"), &LiveState::default());
        let (vpc, var) = (
            change_of(&p, "digitalocean.vpc.main"),
            change_of(&p, "github.actions_variable.v"),
        );
        assert_eq!((vpc.wave, var.wave), (0, 1));
        assert_eq!(var.after, [addr("digitalocean.vpc.main")]);
        // A dependency with nothing to do holds nothing back.
        let l = ledger(json!({"digitalocean.vpc.main": entry("digitalocean.vpc", "v1")}));
        let seen = live(json!({"digitalocean.vpc": {"objects": [
            {"id": "v1", "fields": {"name": "prod", "region": "nyc3"}, "attributes": {"id": "v1"}}
        ]}}));
        let (p, _) = plan_ok(&d, &l, &seen);
        assert_eq!(change_of(&p, "digitalocean.vpc.main").action, Action::NoOp);
        let var = change_of(&p, "github.actions_variable.v");
        assert_eq!(
            (var.action, var.wave, var.after.len()),
            (Action::Create, 0, 0)
        );
    }

    fn removed_pair(cycle: bool) -> (crate::desired::DesiredState, Ledger, LiveState) {
        let d = desired(&format!("[settings]\nprune = true\n\n{VPC}"));
        let mut vpc = entry("digitalocean.vpc", "v-old");
        if cycle {
            vpc["depends_on"] = json!(["github.actions_variable.old"]);
        }
        let mut var = entry("github.actions_variable", "o/r/OLD");
        var["depends_on"] = json!(["digitalocean.vpc.old"]);
        let l = ledger(json!({"digitalocean.vpc.old": vpc, "github.actions_variable.old": var}));
        let seen = live(json!({
            "digitalocean.vpc": {"objects": [{"id": "v-old", "fields": {"name": "old"}}]},
            "github.actions_variable": {"objects": [{"id": "o/r/OLD", "fields": {"name": "OLD"}}]},
        }));
        (d, l, seen)
    }

    #[test]
    fn deletes_run_after_everything_else_dependants_first() {
        let (d, l, seen) = removed_pair(false);
        let (p, _) = plan_ok(&d, &l, &seen);
        let create = change_of(&p, "digitalocean.vpc.main");
        let var = change_of(&p, "github.actions_variable.old");
        let vpc = change_of(&p, "digitalocean.vpc.old");
        assert_eq!((create.wave, var.wave, vpc.wave), (0, 1, 2));
        assert_eq!(
            vpc.after,
            [addr("github.actions_variable.old")],
            "waits for its dependant"
        );
        assert!(var.after.is_empty());
        let waves: Vec<usize> = p.changes.iter().map(|c| c.wave).collect();
        assert!(waves.is_sorted(), "{waves:?}");
    }

    #[test]
    fn a_cycle_in_the_ledgers_record_is_broken_not_stalled() {
        let (d, l, seen) = removed_pair(true);
        let (p, _) = plan_ok(&d, &l, &seen);
        let var = change_of(&p, "github.actions_variable.old");
        let vpc = change_of(&p, "digitalocean.vpc.old");
        assert_eq!((var.action, vpc.action), (Action::Delete, Action::Delete));
        assert_eq!((var.wave, vpc.wave), (1, 1));
    }
}
