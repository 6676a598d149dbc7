//! The ledger's identity against the clouds: an object the ledger records by id must not
//! carry another ledger's lineage marker. If it does, the ledger in hand is not the one that
//! made the object (a ledger copied over another's), and planning from it would rewrite,
//! replace or delete another ledger's objects by id. Pure: the ledger and what was observed.

use crate::desired::{Address, Kind};
use crate::live::LiveState;

use super::Ledger;

/// Objects recorded by id that another ledger's lineage marks.
#[derive(Debug, thiserror::Error)]
#[error(
    "the ledger (lineage {lineage}) records objects that carry another ledger's lineage: {}. This is not the ledger that made them (one ledger copied over another's?): nothing was planned. Restore this ledger's own version (`provisioner state history`, `provisioner state rollback VERSION`), or point --ledger at the ledger that made them",
    .objects.iter().map(ForeignObject::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct ForeignObjects {
    /// The ledger's lineage.
    pub lineage: String,
    /// Each object, in address order.
    pub objects: Vec<ForeignObject>,
}

/// One object of another lineage.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignObject {
    /// The ledger's address for it.
    pub address: Address,
    /// Its cloud id.
    pub id: String,
    /// The lineage its marker names.
    pub theirs: String,
}

impl std::fmt::Display for ForeignObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) is marked lineage {}",
            self.address, self.id, self.theirs
        )
    }
}

/// Refuses a ledger whose recorded objects carry another lineage's marker (only kinds that
/// carry one: [`Kind::carries_lineage`]). An object without a marker proves nothing either
/// way and passes; so does a ledger without a lineage.
pub fn check_objects(ledger: &Ledger, live: &LiveState) -> Result<(), ForeignObjects> {
    if ledger.lineage.is_empty() {
        return Ok(());
    }
    let mut objects = Vec::new();
    for (address, entry) in &ledger.resources {
        let Some(kind) = Kind::parse(&entry.kind).filter(|k| k.carries_lineage()) else {
            continue;
        };
        let Some(observed) = live.kind(kind) else {
            continue;
        };
        let theirs = observed
            .objects
            .iter()
            .filter(|o| o.id == entry.id)
            .find_map(|o| o.lineage().filter(|l| *l != ledger.lineage));
        if let Some(theirs) = theirs {
            objects.push(ForeignObject {
                address: address.clone(),
                id: entry.id.clone(),
                theirs: theirs.to_string(),
            });
        }
    }
    if objects.is_empty() {
        Ok(())
    } else {
        Err(ForeignObjects {
            lineage: ledger.lineage.clone(),
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerEntry;
    use crate::live::{KindObservation, LiveObject, lineage_tag};

    fn live(kind: &str, id: &str, lineage: &str) -> LiveState {
        let mut live = LiveState::default();
        live.kinds.insert(
            kind.into(),
            KindObservation {
                objects: vec![LiveObject {
                    id: id.into(),
                    tags: vec![lineage_tag(lineage)],
                    ..LiveObject::default()
                }],
                ..KindObservation::default()
            },
        );
        live
    }

    fn ledger(kind: &str, id: &str) -> Ledger {
        let mut l = Ledger::new("ours");
        let (p, k) = kind.split_once('.').unwrap();
        l.resources.insert(
            Address::new(p, k, "x"),
            LedgerEntry {
                kind: kind.into(),
                id: id.into(),
                ..LedgerEntry::default()
            },
        );
        l
    }

    #[test]
    fn an_object_matched_by_id_with_another_lineage_is_refused_naming_both() {
        let e = check_objects(
            &ledger("aws.sns_topic", "arn:1"),
            &live("aws.sns_topic", "arn:1", "theirs"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("lineage ours")
                && text.contains("aws.sns_topic.x (arn:1) is marked lineage theirs"),
            "{text}"
        );
    }

    #[test]
    fn our_own_marker_another_id_or_no_marker_passes() {
        let l = ledger("aws.sns_topic", "arn:1");
        assert!(check_objects(&l, &live("aws.sns_topic", "arn:1", "ours")).is_ok());
        assert!(check_objects(&l, &live("aws.sns_topic", "arn:2", "theirs")).is_ok());
        assert!(check_objects(&l, &LiveState::default()).is_ok());
    }
}
