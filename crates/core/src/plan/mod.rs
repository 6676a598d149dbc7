//! Planning: a pure function from (desired state, ledger, live state) to a plan and a report
//! of what was withheld and why; and the plan's human and JSON renderings.

mod diff;
pub mod display;
pub mod invariants;
pub mod model;
pub mod outputs;
pub mod planner;
pub mod resolve;
pub mod scan;

pub use model::{
    Action, Cause, Change, FieldChange, Plan, PlanError, PlanReport, Shown, Unobserved,
};
pub use planner::plan;
