//! Human rendering of a plan: grouped by provider, then kind, in execution-independent
//! sorted order; fixed prefixes; `old -> new` per field; secrets as `(sensitive)`; a summary
//! with replacements and deletions first; the report's notes. `Display` only: printing is
//! the CLI's job.

use std::fmt;

use super::model::{Action, Cause, Change, Plan, PlanReport, ReplaceStrategy, Shown, inline};
use crate::desired::kinds::PROVIDERS;

/// Every label and prefix a rendered plan uses.
pub mod labels {
    /// Create.
    pub const CREATE: &str = "+";
    /// Update in place.
    pub const UPDATE: &str = "~";
    /// Replace.
    pub const REPLACE: &str = "-/+";
    /// Delete.
    pub const DELETE: &str = "-";
    /// Adopt.
    pub const ADOPT: &str = "<=";
    /// Orphan.
    pub const ORPHAN: &str = "!";
    /// Drift on a detect-only resource.
    pub const DRIFT: &str = "?";
    /// A same-named object this ledger cannot prove is its own: nothing done.
    pub const CONFLICT: &str = "x";
    /// Unchanged (shown with `-v`).
    pub const NOOP: &str = " ";
    /// The arrow between old and new values.
    pub const ARROW: &str = "->";
}

/// A plan with its report and the rendering options.
pub struct PlanDisplay<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The report.
    pub report: &'a PlanReport,
    /// ANSI colours (only on a terminal and never with `NO_COLOR`; the CLI decides).
    pub color: bool,
    /// Show unchanged resources too.
    pub verbose: bool,
}

fn prefix(a: Action) -> &'static str {
    match a {
        Action::Create => labels::CREATE,
        Action::Update => labels::UPDATE,
        Action::Replace => labels::REPLACE,
        Action::Delete => labels::DELETE,
        Action::Adopt => labels::ADOPT,
        Action::Orphan => labels::ORPHAN,
        Action::Drift => labels::DRIFT,
        Action::Conflict => labels::CONFLICT,
        Action::NoOp => labels::NOOP,
    }
}

fn colour(a: Action) -> &'static str {
    match a {
        Action::Create => "\x1b[32m",
        Action::Update | Action::Adopt => "\x1b[33m",
        Action::Replace | Action::Delete | Action::Conflict => "\x1b[31m",
        Action::Orphan | Action::Drift => "\x1b[35m",
        Action::NoOp => "",
    }
}

/// The health a change reports, when it is not ready.
fn unhealthy(c: &Change) -> Option<&crate::live::Health> {
    c.health.as_ref().filter(|h| !h.is_ready())
}

fn verb(c: &Change) -> String {
    match c.action {
        Action::Create => "will be created".into(),
        Action::Update => "will be updated in place".into(),
        Action::Replace => match c.strategy {
            Some(ReplaceStrategy::CreateBeforeDestroy) => {
                "will be replaced (new one first, then the old one deleted)".into()
            }
            Some(ReplaceStrategy::InPlace) => {
                "will be replaced in place (the same object, its key or value renewed)".into()
            }
            _ => "will be replaced (old one deleted first)".into(),
        },
        Action::Delete => "will be deleted".into(),
        Action::Adopt => "will be adopted".into(),
        Action::Orphan => "is orphaned".into(),
        // Parts provisioner did not make (a hand-made access key): reported in either mode.
        Action::Drift if c.fields.iter().any(|f| f.path.starts_with("unmanaged_")) => {
            "has parts provisioner did not make (reported, never removed)".into()
        }
        Action::Drift if c.cause.is_drift() => "has drifted (detect mode: not corrected)".into(),
        Action::Drift => "differs from the desired state (detect mode: not changed)".into(),
        Action::Conflict
            if c.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("blocked:")) =>
        {
            "is blocked by a conflict it depends on".into()
        }
        Action::Conflict => {
            "cannot be created: an object of that name exists that is not provably this ledger's"
                .into()
        }
        Action::NoOp if !c.ignored.is_empty() => "is unchanged apart from expected drift".into(),
        Action::NoOp => "is unchanged".into(),
    }
}

impl fmt::Display for PlanDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = if self.color { "\x1b[0m" } else { "" };
        let shown: Vec<&Change> = self
            .plan
            .changes
            .iter()
            .filter(|c| {
                self.verbose
                    || c.action != Action::NoOp
                    || !c.ignored.is_empty()
                    || unhealthy(c).is_some()
            })
            .collect();
        if let Some(env) = &self.plan.environment {
            writeln!(f, "environment {}", esc(env))?;
        }
        for provider in PROVIDERS {
            let mut of_provider: Vec<&&Change> = shown
                .iter()
                .filter(|c| c.address.provider() == *provider)
                .collect();
            if of_provider.is_empty() {
                continue;
            }
            of_provider.sort_by(|a, b| {
                (a.address.kind(), a.address.module(), a.address.name()).cmp(&(
                    b.address.kind(),
                    b.address.module(),
                    b.address.name(),
                ))
            });
            writeln!(f, "{provider}")?;
            let mut kind = "";
            for c in of_provider {
                if c.address.kind() != kind {
                    kind = c.address.kind();
                    writeln!(f, "  {provider}.{kind}")?;
                }
                let col = if self.color { colour(c.action) } else { "" };
                write!(
                    f,
                    "    {col}{} {}{off} {}",
                    prefix(c.action),
                    c.address,
                    verb(c)
                )?;
                if let Some(id) = &c.cloud_id {
                    write!(f, " (id {})", esc(id))?;
                }
                if c.action.acts() {
                    write!(f, " [step {}]", c.wave + 1)?;
                }
                writeln!(f)?;
                if let Some(reason) = &c.reason {
                    writeln!(f, "        # {}", esc(reason))?;
                }
                if let Some(h) = unhealthy(c) {
                    writeln!(
                        f,
                        "        ! not ready ({}, {}): {}",
                        h.state.as_str(),
                        esc(&h.reason),
                        esc(&h.message)
                    )?;
                }
                // A re-create's reason already says the object was deleted outside.
                if (c.action.acts() || c.action == Action::Drift) && c.action != Action::Create {
                    match c.cause {
                        Cause::Drift => writeln!(
                            f,
                            "        # drift: changed outside provisioner since it was last applied"
                        )?,
                        Cause::DesiredAndDrift => writeln!(
                            f,
                            "        # the desired state changed, and fields marked (drift) were changed outside provisioner"
                        )?,
                        Cause::Desired | Cause::Recovery => {}
                    }
                }
                let width = c
                    .fields
                    .iter()
                    .chain(&c.ignored)
                    .map(|x| element(x).map_or(x.path.len(), |(base, _, _)| base.len()))
                    .max()
                    .unwrap_or(0);
                // The unchanged elements of a list, said once after its changed ones.
                let mut fold: Option<(&str, usize)> = None;
                let flush = |f: &mut fmt::Formatter<'_>, fold: &mut Option<(&str, usize)>| {
                    match fold.take() {
                        Some((_, n)) => {
                            writeln!(f, "        {:width$} # ({n} unchanged hidden)", "")
                        }
                        None => Ok(()),
                    }
                };
                for x in &c.fields {
                    // One element of a list of tables added or removed: the element alone.
                    if let Some((base, sign, value)) = element(x) {
                        if fold.is_some_and(|(b, _)| b != base) {
                            flush(f, &mut fold)?;
                        }
                        let why = why(c, x);
                        writeln!(f, "        {base:width$} {sign} {value}{why}")?;
                        if let Some(n) = x.unchanged {
                            fold = Some((base, n));
                        }
                        continue;
                    }
                    flush(f, &mut fold)?;
                    if c.action == Action::Create {
                        let value = match &x.new {
                            Shown::Value(v) => block(v, 8),
                            other => other.render(),
                        };
                        writeln!(f, "        {:width$} = {value}", x.path)?;
                    } else {
                        let forces = why(c, x);
                        writeln!(
                            f,
                            "        {:width$} : {} {} {}{forces}",
                            x.path,
                            x.old.render(),
                            labels::ARROW,
                            x.new.render()
                        )?;
                    }
                }
                flush(f, &mut fold)?;
                for x in &c.ignored {
                    writeln!(
                        f,
                        "        {:width$} : {} {} {}   # ignored (ignore_changes): expected drift",
                        x.path,
                        x.old.render(),
                        labels::ARROW,
                        x.new.render()
                    )?;
                }
            }
            writeln!(f)?;
        }
        write!(
            f,
            "{}",
            Summary {
                plan: self.plan,
                report: self.report
            }
        )?;
        if let Some(legend) = legend(self.plan) {
            writeln!(f, "{legend}")?;
        }
        if !self.report.unobserved.is_empty() {
            writeln!(
                f,
                "\nNot observed (nothing of these kinds, or of these parts of them, is created, adopted or deleted; whether they match is unknown):"
            )?;
            for u in &self.report.unobserved {
                writeln!(f, "  - {}: {}", esc(&u.subject()), esc(&u.reason))?;
            }
        }
        if !self.report.notes.is_empty() {
            writeln!(f, "\nNotes:")?;
            for n in &self.report.notes {
                writeln!(f, "  - {}: {}", esc(&n.subject), esc(&n.message))?;
            }
        }
        Ok(())
    }
}

/// The comment after a changed field: whether it forces the replacement, whether it
/// drifted (when the change mixes drift and edits), and where the desired value is written
/// (for a change the files ask for).
fn why(c: &Change, x: &super::model::FieldChange) -> String {
    let mut parts: Vec<String> = Vec::new();
    if x.forces_replacement {
        parts.push("forces replacement".into());
    }
    if x.drift && c.cause == Cause::DesiredAndDrift {
        parts.push("(drift)".into());
    }
    if let Some(source) = x.source.as_deref().filter(|_| !x.drift) {
        parts.push(format!("from {}", esc(source)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("   # {}", parts.join("; "))
    }
}

/// Cloud- and user-controlled text (reasons, notes, ids) with control characters escaped,
/// so a plan printed raw (with its colours) can never move a terminal's cursor. Values are
/// rendered as JSON or Rust string literals, which escape them already.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    crate::errors::escape(text)
}

/// A change of one element of a list of tables (`inbound_rules[+]`, `inbound_rules[-]`):
/// the list's path, `+` or `-`, and the element.
fn element(x: &super::model::FieldChange) -> Option<(&str, char, String)> {
    if let Some(base) = x.path.strip_suffix("[+]")
        && let Shown::Value(v) = &x.new
    {
        return Some((base, '+', inline(v)));
    }
    if let Some(base) = x.path.strip_suffix("[-]")
        && let Shown::Value(v) = &x.old
    {
        return Some((base, '-', inline(v)));
    }
    None
}

/// A value as an indented block when it does not fit on one line: one element or table
/// field per line, nested as deep as the value is (`indent` is the current column).
fn block(v: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    let one = inline(v);
    if one.chars().count() <= 100 {
        return one;
    }
    let pad = " ".repeat(indent + 2);
    let end = " ".repeat(indent);
    match v {
        Value::Array(items) => {
            let lines: Vec<String> = items
                .iter()
                .map(|i| format!("{pad}{},", block(i, indent + 2)))
                .collect();
            format!("[\n{}\n{end}]", lines.join("\n"))
        }
        Value::Object(map) => {
            let lines: Vec<String> = map
                .iter()
                .filter(|(_, x)| !super::model::is_nothing(x))
                .map(|(k, x)| format!("{pad}{} = {}", super::model::key(k), block(x, indent + 2)))
                .collect();
            format!("{{\n{}\n{end}}}", lines.join("\n"))
        }
        _ => one,
    }
}

/// The symbols a plan used, explained, in one line.
fn legend(plan: &Plan) -> Option<String> {
    let words = [
        (Action::Create, labels::CREATE, "create"),
        (Action::Update, labels::UPDATE, "update in place"),
        (Action::Replace, labels::REPLACE, "replace"),
        (Action::Delete, labels::DELETE, "delete"),
        (Action::Adopt, labels::ADOPT, "adopt (start managing)"),
        (
            Action::Orphan,
            labels::ORPHAN,
            "orphan (left alone, reported)",
        ),
        (
            Action::Drift,
            labels::DRIFT,
            "differs, reported only (detect mode, or parts provisioner did not make)",
        ),
        (Action::Conflict, labels::CONFLICT, "conflict (not changed)"),
    ];
    let used: Vec<String> = words
        .iter()
        .filter(|(a, _, _)| plan.changes.iter().any(|c| c.action == *a))
        .map(|(_, sign, word)| format!("{sign} {word}"))
        .collect();
    let elements = plan
        .changes
        .iter()
        .flat_map(|c| &c.fields)
        .any(|x| element(x).is_some());
    let mut parts = used;
    if elements {
        parts.push("list + element added, list - element removed".into());
    }
    (!parts.is_empty()).then(|| format!("Symbols: {}.", parts.join(", ")))
}

/// "1 kind", "2 scopes", "1 kind and 1 scope": what the report could not observe.
pub fn unobserved_count(report: &PlanReport) -> String {
    let scopes = report
        .unobserved
        .iter()
        .filter(|u| u.scope.is_some())
        .count();
    let kinds = report.unobserved.len() - scopes;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (kinds, scopes) {
        (k, 0) => plural(k, "kind"),
        (0, s) => plural(s, "scope"),
        (k, s) => format!("{} and {}", plural(k, "kind"), plural(s, "scope")),
    }
}

/// The summary, replacements and deletions first. It says the clouds match only when every
/// kind the plan needed was observed and nothing is to do, in conflict or drifted.
pub struct Summary<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Its report (what could not be observed).
    pub report: &'a PlanReport,
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |a: Action| self.plan.changes.iter().filter(|c| c.action == a).count();
        let unobserved = self.report.unobserved.len();
        let what = unobserved_count(self.report);
        let quiet = !self.plan.has_changes()
            && n(Action::Orphan) == 0
            && n(Action::Drift) == 0
            && n(Action::Conflict) == 0;
        let not_ready: Vec<String> = self
            .plan
            .changes
            .iter()
            .filter_map(|c| {
                let h = unhealthy(c)?;
                Some(format!("{} ({})", c.address, h.state.as_str()))
            })
            .collect();
        if quiet && unobserved == 0 {
            writeln!(f, "No changes: the clouds match the desired state.")?;
            if !not_ready.is_empty() {
                writeln!(
                    f,
                    "Not ready (their controllers say so; applying again does not help): {}.",
                    not_ready.join(", ")
                )?;
            }
            return Ok(());
        }
        if quiet {
            return writeln!(
                f,
                "Incomplete: {what} could not be observed, so whether the clouds match is unknown. Nothing else to do."
            );
        }
        write!(
            f,
            "Plan: {} to replace, {} to delete, {} to create, {} to update, {} to adopt",
            n(Action::Replace),
            n(Action::Delete),
            n(Action::Create),
            n(Action::Update),
            n(Action::Adopt)
        )?;
        let (o, d, x) = (n(Action::Orphan), n(Action::Drift), n(Action::Conflict));
        if o + d > 0 {
            write!(f, "; {o} orphaned, {d} drifted (reported only)")?;
        }
        if x > 0 {
            write!(f, "; {x} in conflict (not changed)")?;
        }
        let drift = self.plan.drifted().count();
        if drift > 0 {
            write!(f, "; {drift} because of drift")?;
        }
        writeln!(f, ".")?;
        if unobserved > 0 {
            writeln!(
                f,
                "Incomplete: {what} could not be observed (below); nothing of them is planned."
            )?;
        }
        Ok(())
    }
}
