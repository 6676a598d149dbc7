//! The executor. One task drives everything: it starts every change whose dependencies
//! (`Change::after`) have finished, up to the provider's concurrency, waits for the next one
//! to finish, records it, and repeats. Before a batch of creates starts, their intents are
//! persisted (write-ahead: a crash between create and record is resolved on the next pass by
//! finding the object by name). Results are persisted as they arrive, coalesced to at most
//! one write per `flush_every` — a result lost to a crash is found again by the next pass,
//! never duplicated. A failed change skips its dependants and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::{
    Outcome, SecretOutputs, initial_attributes, live_index, local_options, resolve_secrets,
};
use crate::desired::{Address, DesiredState, Kind};
use crate::ledger::fingerprint::FingerprintKey;
use crate::ledger::model::applied_hash;
use crate::ledger::{Intent, Ledger, LedgerEntry};
use crate::live::LiveState;
use crate::plan::model::ReplaceStrategy;
use crate::plan::planner::{
    RETIRING, Resolved, UNDELIVERED, desired_fields, known_fields, natural_key, retiring_held,
    retiring_value, undelivered, unrecoverable,
};
use crate::plan::{Action, Change, Plan};
use crate::providers::{Applied, ApplyRequest, Changes, Failure, ProviderError, SecretValue};

/// How to carry out a plan.
#[derive(Clone, Debug)]
pub struct ExecOptions<'a> {
    /// Changes in flight per provider (`digitalocean`, `aws`, `github`); 1 when absent.
    pub concurrency: BTreeMap<&'static str, usize>,
    /// The fingerprint key for secret values written (none: no fingerprints recorded).
    pub key: Option<&'a FingerprintKey>,
    /// Results are persisted at most this often (intents are always persisted first).
    pub flush_every: Duration,
    /// Once set, nothing more is started; what is in flight finishes and is recorded.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl ExecOptions<'_> {
    /// One change at a time.
    pub fn sequential() -> Self {
        ExecOptions {
            concurrency: BTreeMap::new(),
            key: None,
            flush_every: Duration::from_secs(1),
            stop: None,
        }
    }

    /// The concurrency of `[settings.concurrency]`, per provider of the registry; a
    /// provider the settings have no key for runs one change at a time.
    pub fn from_settings(settings: &crate::desired::model::Settings) -> Self {
        let c = &settings.concurrency;
        ExecOptions {
            concurrency: crate::providers::PROVIDERS
                .iter()
                .filter_map(|p| Some((*p, c.for_provider(p)? as usize)))
                .collect(),
            key: None,
            flush_every: Duration::from_secs(1),
            stop: None,
        }
    }
}

/// Where the ledger goes while the executor works (the store, behind a conditional write).
pub trait Persist {
    /// Persists `ledger`; `why` is the history summary.
    fn save(
        &mut self,
        ledger: &Ledger,
        why: &str,
    ) -> impl Future<Output = Result<(), crate::ledger::LedgerError>>;
}

/// Persists nothing (tests, tools).
#[derive(Debug)]
pub struct NoPersist;

impl Persist for NoPersist {
    async fn save(&mut self, _: &Ledger, _: &str) -> Result<(), crate::ledger::LedgerError> {
        Ok(())
    }
}

/// Told when changes start and finish (the CLI's progress lines, the daemon's logs).
pub trait Progress {
    /// A change started.
    fn started(&self, change: &Change);
    /// A change finished.
    fn finished(&self, outcome: &Outcome);
}

/// Reports nothing.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _: &Change) {}
    fn finished(&self, _: &Outcome) {}
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Every acting change, in the order they finished.
    pub outcomes: Vec<Outcome>,
    /// How long it took.
    pub elapsed: Duration,
    /// Set when the ledger could not be written: the executor stopped starting changes.
    /// A [`LedgerError::Conflict`](crate::ledger::LedgerError::Conflict) means another writer
    /// won the race; the others leave the store as it was.
    pub ledger_error: Option<crate::ledger::LedgerError>,
}

impl ApplyReport {
    /// (done, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let done = self.outcomes.iter().filter(|o| o.result.is_ok()).count();
        let skipped = self.outcomes.iter().filter(|o| o.skipped).count();
        (done, self.outcomes.len() - done - skipped, skipped)
    }

    /// The longest wait a rate limit asked for, among the failed changes: the daemon's next
    /// pass comes no sooner.
    pub fn retry_after(&self) -> Option<Duration> {
        self.outcomes
            .iter()
            .filter_map(|o| match o.failure {
                Some(Failure::RateLimited { retry_after }) => retry_after,
                _ => None,
            })
            .max()
    }

    /// True when every change succeeded and the ledger was written.
    pub fn succeeded(&self) -> bool {
        self.ledger_error.is_none() && self.outcomes.iter().all(|o| o.result.is_ok())
    }
}

/// What a finished change hands back to the driver.
struct Finished {
    index: usize,
    result: Result<Applied, ProviderError>,
    known: serde_json::Map<String, Value>,
    fingerprints: BTreeMap<String, String>,
    elapsed: Duration,
}

type Running<'f> = Pin<Box<dyn Future<Output = Finished> + 'f>>;

/// Carries out `plan` with `provider`, recording results in `ledger` and persisting it
/// through `persist`.
#[allow(clippy::too_many_arguments)]
pub async fn execute<P: Changes, S: Persist, G: Progress>(
    plan: &Plan,
    desired: &DesiredState,
    ledger: &mut Ledger,
    live: &LiveState,
    provider: &P,
    options: &ExecOptions<'_>,
    persist: &mut S,
    progress: &G,
) -> ApplyReport {
    let started = Instant::now();
    let changes: Vec<&Change> = plan.changes.iter().filter(|c| c.action.acts()).collect();
    let position: HashMap<&Address, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.address, i))
        .collect();
    let deps: Vec<Vec<usize>> = changes
        .iter()
        .map(|c| {
            c.after
                .iter()
                .filter_map(|a| position.get(a).copied())
                .collect()
        })
        .collect();
    let mut attrs = initial_attributes(desired, ledger, live);
    let by_id = live_index(live);
    // Adopted objects the ledger does not know yet: their live attributes.
    for c in &changes {
        if let (Some(id), Some(r)) = (&c.cloud_id, desired.resources.get(&c.address))
            && let Some(o) = by_id.get(&(r.kind().key(), id.as_str()))
        {
            attrs
                .entry(c.address.clone())
                .or_insert(None)
                .get_or_insert_with(Default::default)
                .extend(o.attributes.clone());
        }
    }
    let lineage = ledger.lineage.clone();
    let mut outputs = SecretOutputs::new();
    let mut state = vec![State::Waiting; changes.len()];
    let mut in_flight: BTreeMap<&str, usize> = BTreeMap::new();
    let mut running: FuturesUnordered<Running<'_>> = FuturesUnordered::new();
    let mut report = ApplyReport::default();
    let mut dirty = false;
    // Set when a producer's unrecoverable output awaits its consumers: the ledger records
    // that before any of them starts, so a crash in between is made good by the next pass.
    let mut must_flush = false;
    let mut last_flush = Instant::now();

    loop {
        // Start what can start.
        let mut batch: Vec<(usize, Prepared)> = Vec::new();
        let stopping = options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
        if report.ledger_error.is_none() && !stopping {
            for i in 0..changes.len() {
                if state[i] != State::Waiting {
                    continue;
                }
                if let Some(&d) = deps[i].iter().find(|&&d| matches!(state[d], State::Failed)) {
                    state[i] = State::Failed;
                    let o = Outcome {
                        address: changes[i].address.clone(),
                        action: changes[i].action,
                        result: Err(format!("skipped: {} did not succeed", changes[d].address)),
                        skipped: true,
                        elapsed: Duration::ZERO,
                        failure: None,
                    };
                    progress.finished(&o);
                    report.outcomes.push(o);
                    continue;
                }
                if !deps[i].iter().all(|&d| state[d] == State::Done) {
                    continue;
                }
                let provider_name = changes[i].address.provider();
                let limit = options
                    .concurrency
                    .get(provider_name)
                    .copied()
                    .unwrap_or(1)
                    .max(1);
                let n = in_flight.entry(provider_name).or_default();
                if *n >= limit {
                    continue;
                }
                match prepare(changes[i], desired, ledger, &attrs, &by_id) {
                    Ok(Some(p)) => {
                        *n += 1;
                        state[i] = State::Running;
                        batch.push((i, p));
                    }
                    Ok(None) => state[i] = State::Done,
                    Err(why) => {
                        state[i] = State::Failed;
                        let o = Outcome {
                            address: changes[i].address.clone(),
                            action: changes[i].action,
                            result: Err(why),
                            skipped: true,
                            elapsed: Duration::ZERO,
                            failure: None,
                        };
                        progress.finished(&o);
                        report.outcomes.push(o);
                    }
                }
            }
        }
        // Write-ahead: the intents of the creates (and replacements, which create too) about
        // to start, before they start. An object a killed create or replacement leaves
        // behind is then found by its key, and known to be this ledger's.
        let mut intents = false;
        // When an earlier attempt of each starting change began, if one never finished: read
        // before this attempt's intent replaces it.
        let mut attempted: HashMap<usize, String> = HashMap::new();
        let mut starting = Vec::new();
        for (i, p) in &batch {
            if let Some(t) = ledger
                .pending
                .get(&changes[*i].address)
                .and_then(|i| i.at.clone())
            {
                attempted.insert(*i, t);
            }
            if matches!(changes[*i].action, Action::Create | Action::Replace) {
                starting.push(changes[*i].address.to_string());
                // An earlier attempt that never finished keeps its time: what it made is
                // dated after it.
                // This attempt's own time: what an earlier unfinished attempt made is
                // removed by this one (`attempted_since`), before it makes anything.
                let at = crate::ledger::lease::rfc3339(std::time::SystemTime::now());
                ledger.pending.insert(
                    changes[*i].address.clone(),
                    Intent {
                        kind: p.kind.key().to_string(),
                        key: natural_key(p.kind, &p.known).unwrap_or_default(),
                        at: Some(at),
                    },
                );
                intents = true;
            }
        }
        if intents || must_flush || (dirty && last_flush.elapsed() >= options.flush_every) {
            must_flush = false;
            // Each version says what it records: how far the apply is, and whose create
            // intents it holds.
            let done = state.iter().filter(|s| matches!(s, State::Done)).count();
            let mut why = format!("apply: {done} of {} changes done", changes.len());
            if !starting.is_empty() {
                why.push_str(&format!("; about to create {}", starting.join(", ")));
            }
            if let Err(e) = persist.save(ledger, &why).await {
                report.ledger_error = Some(e);
                // Nothing in this batch has started: none of it runs.
                for (i, _) in batch.drain(..) {
                    state[i] = State::Failed;
                    *in_flight.entry(changes[i].address.provider()).or_default() -= 1;
                }
            }
            dirty = false;
            last_flush = Instant::now();
        }
        for (i, p) in batch {
            progress.started(changes[i]);
            running.push(Box::pin(run(
                i,
                changes[i],
                p,
                desired,
                referenced_entries(changes[i], desired, ledger),
                outputs.clone(),
                provider,
                options.key,
                lineage.clone(),
                Recorded::of(&changes[i].address, desired, ledger, attempted.remove(&i)),
            )));
        }
        // Wait for the next result.
        let Some(first) = running.next().await else {
            break;
        };
        let mut finished = vec![first];
        while let Some(Some(more)) = running.next().now_or_never() {
            finished.push(more);
        }
        for f in finished {
            let c = changes[f.index];
            *in_flight.entry(c.address.provider()).or_default() -= 1;
            let result = match f.result {
                Ok(applied) => {
                    must_flush |= record(
                        c,
                        desired,
                        ledger,
                        &mut attrs,
                        &mut outputs,
                        applied,
                        f.known,
                        f.fingerprints,
                    );
                    state[f.index] = State::Done;
                    Ok(())
                }
                Err(e) => {
                    state[f.index] = State::Failed;
                    Err(e)
                }
            };
            let failure = result.as_ref().err().map(|e| e.failure);
            let o = Outcome {
                address: c.address.clone(),
                action: c.action,
                result: result.map_err(|e| e.message),
                skipped: false,
                elapsed: f.elapsed,
                failure,
            };
            progress.finished(&o);
            report.outcomes.push(o);
            dirty = true;
            if state[f.index] == State::Done {
                retire_due(c, desired, ledger, provider, &mut report, progress).await;
            }
        }
    }
    if (dirty || report.outcomes.is_empty()) && report.ledger_error.is_none() && !changes.is_empty()
    {
        let (done, failed, skipped) = report.counts();
        let why = format!("apply: {done} done, {failed} failed, {skipped} skipped");
        if let Err(e) = persist.save(ledger, &why).await {
            report.ledger_error = Some(e);
        }
    }
    // Changes never started (after a ledger error, or when asked to stop) are reported as
    // skipped.
    let why = if report.ledger_error.is_some() {
        "skipped: the ledger could not be written"
    } else {
        "skipped: stopped before it started"
    };
    for (i, s) in state.iter().enumerate() {
        if *s == State::Waiting {
            report.outcomes.push(Outcome {
                address: changes[i].address.clone(),
                action: changes[i].action,
                result: Err(why.into()),
                skipped: true,
                elapsed: Duration::ZERO,
                failure: None,
            });
        }
    }
    report.elapsed = started.elapsed();
    report
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
}

/// A change ready to start: its kind, fields resolved, and what a delete needs.
struct Prepared {
    kind: Kind,
    known: serde_json::Map<String, Value>,
    /// For a delete: the ledger's cloud id and local settings.
    delete: Option<(String, Value)>,
    /// For a replacement: the old object's fields and local settings, as the ledger
    /// recorded them (the desired ones when it recorded none), for the delete half.
    old: Option<(serde_json::Map<String, Value>, Value)>,
}

/// Resolves a change's fields; `Ok(None)` when there is nothing to do after all (a delete of
/// something the ledger no longer holds). `live` is what observing saw, by kind and id.
fn prepare(
    c: &Change,
    desired: &DesiredState,
    ledger: &Ledger,
    attrs: &crate::plan::planner::Attributes,
    live: &HashMap<(&str, &str), &crate::live::LiveObject>,
) -> Result<Option<Prepared>, String> {
    if c.action == Action::Delete {
        let Some(entry) = ledger.resources.get(&c.address) else {
            // What an interrupted create left behind: known by its intent only.
            if let (Some(intent), Some(id)) = (ledger.pending.get(&c.address), &c.cloud_id) {
                let kind = Kind::parse(&intent.kind)
                    .ok_or_else(|| format!("the ledger names unknown kind `{}`", intent.kind))?;
                return Ok(Some(Prepared {
                    kind,
                    known: Default::default(),
                    delete: Some((id.clone(), Value::Object(Default::default()))),
                    old: None,
                }));
            }
            return Ok(None);
        };
        let kind = Kind::parse(&entry.kind)
            .ok_or_else(|| format!("the ledger names unknown kind `{}`", entry.kind))?;
        return Ok(Some(Prepared {
            kind,
            known: entry.applied.clone(),
            delete: Some((entry.id.clone(), Value::Object(entry.options.clone()))),
            old: None,
        }));
    }
    let r = desired
        .resources
        .get(&c.address)
        .ok_or_else(|| format!("{} is not in the desired state", c.address))?;
    let fields = desired_fields(r, attrs);
    if let Some((name, _)) = fields.iter().find(|(_, v)| **v == Resolved::Unknown) {
        return Err(format!(
            "skipped: `{name}` refers to something that was not created"
        ));
    }
    let mut known = known_fields(&fields);
    // `ignore_changes`: what someone else owns is sent as they left it, so an update made for
    // another field does not undo theirs (an update sends every field: a PATCH of them all,
    // or a PUT of the whole object). The ledger then records that value as applied.
    if matches!(c.action, Action::Update | Action::Adopt)
        && let Some(object) = c
            .cloud_id
            .as_deref()
            .and_then(|id| live.get(&(r.kind().key(), id)))
    {
        for path in &r.lifecycle.ignore_changes {
            keep_live(&object.fields, &mut known, path);
        }
    }
    let old = (c.action == Action::Replace).then(|| match ledger.resources.get(&c.address) {
        Some(e) => (e.applied.clone(), Value::Object(e.options.clone())),
        None => (known.clone(), r.spec_json.clone()),
    });
    Ok(Some(Prepared {
        kind: r.kind(),
        known,
        delete: None,
        old,
    }))
}

/// Sets the field at dotted `path` (`node_pools.workers.count`) of `sent` to its value in
/// `live`. A path the object does not have is left as desired (nobody set it), and so is one
/// whose table is not sent (a node pool being added).
fn keep_live(
    live: &serde_json::Map<String, Value>,
    sent: &mut serde_json::Map<String, Value>,
    path: &str,
) {
    let (parents, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (parents.split('.').collect::<Vec<_>>(), last),
        None => (Vec::new(), path),
    };
    let mut have = live;
    for s in &parents {
        match have.get(*s) {
            Some(Value::Object(m)) => have = m,
            _ => return,
        }
    }
    let Some(value) = have.get(last) else {
        return;
    };
    let mut cur = sent;
    for s in &parents {
        let Some(Value::Object(m)) = cur.get_mut(*s) else {
            return;
        };
        cur = m;
    }
    cur.insert(last.to_string(), value.clone());
}

/// What a running change reads of the ledger: only the entries of the resources its secret
/// values come from (their outputs may have to be read again).
fn referenced_entries(c: &Change, desired: &DesiredState, ledger: &Ledger) -> Ledger {
    let mut out = Ledger::new(ledger.lineage.clone());
    let Some(r) = desired.resources.get(&c.address) else {
        return out;
    };
    for (_, source) in r.spec.secret_sources() {
        if let crate::desired::values::SecretSource::Ref(reference) = source
            && let Some(e) = ledger.resources.get(&reference.address)
        {
            out.resources.insert(reference.address.clone(), e.clone());
        }
    }
    out
}

/// What the ledger recorded of a change's resource, as the provider reads it.
struct Recorded {
    /// The attributes last recorded.
    attributes: Option<BTreeMap<String, Value>>,
    /// Parts superseded by an earlier change that consumers may still hold.
    retiring: Vec<String>,
    /// Parts superseded by an earlier change that nobody holds any more: retired before
    /// the change runs.
    free: Vec<String>,
    /// The recorded object's unrecoverable outputs reached no consumer.
    unused: bool,
    /// When the first unfinished attempt of the change began (its intent's time).
    attempted_since: Option<String>,
}

impl Recorded {
    fn of(
        address: &Address,
        desired: &DesiredState,
        ledger: &Ledger,
        attempted_since: Option<String>,
    ) -> Self {
        let Some(entry) = ledger.resources.get(address) else {
            return Recorded {
                attributes: None,
                retiring: Vec::new(),
                free: Vec::new(),
                unused: false,
                attempted_since,
            };
        };
        // Unused: some output is still owed, and every consumer now reading each owed output
        // is among those still owed it (none ever received it).
        let owed = undelivered(entry);
        let unused = !owed.is_empty()
            && owed.iter().all(|(output, waiting)| {
                desired
                    .resources
                    .values()
                    .filter(|c| reads_secret(c, address, output).is_some())
                    .all(|c| waiting.contains(&c.address.to_string()))
            });
        let (free, held): (Vec<_>, Vec<_>) = retiring_held(entry)
            .into_iter()
            .partition(|(_, holders)| holders.is_empty());
        Recorded {
            attributes: Some(entry.attributes.clone()),
            retiring: held.into_iter().map(|(id, _)| id).collect(),
            free: free.into_iter().map(|(id, _)| id).collect(),
            unused,
            attempted_since,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<P: Changes>(
    index: usize,
    c: &Change,
    p: Prepared,
    desired: &DesiredState,
    ledger: Ledger,
    outputs: SecretOutputs,
    provider: &P,
    key: Option<&FingerprintKey>,
    lineage: String,
    recorded: Recorded,
) -> Finished {
    let started = Instant::now();
    let finish = |result, known, fingerprints| Finished {
        index,
        result,
        known,
        fingerprints,
        elapsed: started.elapsed(),
    };
    if let Some((id, options)) = &p.delete {
        let none = BTreeMap::new();
        let result = provider
            .apply(ApplyRequest {
                address: &c.address,
                kind: p.kind,
                action: Action::Delete,
                cloud_id: Some(id),
                fields: &p.known,
                strategy: None,
                spec: Some(options),
                lineage: &lineage,
                secrets: &none,
                recorded: recorded.attributes.as_ref(),
                retiring: &recorded.retiring,
                unused: recorded.unused,
                attempted_since: None,
            })
            .await;
        return finish(result, p.known, BTreeMap::new());
    }
    let Some(r) = desired.resources.get(&c.address) else {
        return finish(
            Err(ProviderError::msg("not desired")),
            p.known,
            BTreeMap::new(),
        );
    };
    let secrets: BTreeMap<String, SecretValue> =
        match resolve_secrets(r, desired, &ledger, &outputs, provider).await {
            Ok(s) => s,
            Err(e) => return finish(Err(ProviderError::msg(e)), p.known, BTreeMap::new()),
        };
    let fingerprints: BTreeMap<String, String> = key
        .map(|k| {
            secrets
                .iter()
                .map(|(f, v)| (f.clone(), k.fingerprint(&c.address, f, v.expose())))
                .collect()
        })
        .unwrap_or_default();
    // What an earlier change superseded and nobody holds any more goes first: it may be
    // taking the room the change needs (IAM allows two access keys).
    if !recorded.free.is_empty()
        && let Some(id) = c.cloud_id.as_deref()
        && let Err(e) = provider.retire(p.kind, id, &recorded.free).await
    {
        return finish(Err(e), p.known, fingerprints);
    }
    let request = |action, cloud_id| ApplyRequest {
        address: &c.address,
        kind: p.kind,
        action,
        cloud_id,
        fields: &p.known,
        strategy: c.strategy,
        spec: Some(&r.spec_json),
        lineage: &lineage,
        secrets: &secrets,
        recorded: recorded.attributes.as_ref(),
        retiring: &recorded.retiring,
        unused: recorded.unused,
        attempted_since: recorded.attempted_since.as_deref(),
    };
    let result = match (c.action, c.strategy, c.cloud_id.as_deref(), &p.old) {
        // A replacement is a create and a delete, in the order of its strategy, decided here
        // for every provider; only a renewal in place is the provider's own.
        (Action::Replace, Some(strategy), Some(old_id), Some((old_fields, old_options)))
            if strategy != ReplaceStrategy::InPlace =>
        {
            let none = BTreeMap::new();
            let delete_old = || {
                provider.apply(ApplyRequest {
                    address: &c.address,
                    kind: p.kind,
                    action: Action::Delete,
                    cloud_id: Some(old_id),
                    fields: old_fields,
                    strategy: None,
                    spec: Some(old_options),
                    lineage: &lineage,
                    secrets: &none,
                    recorded: recorded.attributes.as_ref(),
                    retiring: &recorded.retiring,
                    unused: false,
                    attempted_since: None,
                })
            };
            if strategy == ReplaceStrategy::DestroyFirst {
                match delete_old().await {
                    Ok(_) => provider
                        .apply(request(Action::Create, None))
                        .await
                        .map_err(|e| ProviderError {
                            message: format!("{old_id} was deleted, but creating its replacement failed: {}; the next pass creates it", e.message),
                            ..e
                        }),
                    Err(e) => Err(e),
                }
            } else {
                match provider.apply(request(Action::Create, None)).await {
                    Ok(new) => match delete_old().await {
                        Ok(_) => Ok(new),
                        // The new object is found by its intent on the next pass, which
                        // deletes the old one then.
                        Err(e) => Err(ProviderError {
                            message: format!(
                                "the replacement of {old_id} was created, but deleting {old_id} failed: {}; the next pass finishes it",
                                e.message
                            ),
                            ..e
                        }),
                    },
                    Err(e) => Err(e),
                }
            }
        }
        _ => {
            provider
                .apply(request(c.action, c.cloud_id.as_deref()))
                .await
        }
    };
    // What interrupted creates of this resource left: gone before the change is recorded
    // (and its intent cleared), so a kill here leaves them findable by the intent still.
    if result.is_ok() {
        let none = BTreeMap::new();
        let options = Value::Object(Default::default());
        for id in &c.leftovers {
            let deleted = provider
                .apply(ApplyRequest {
                    address: &c.address,
                    kind: p.kind,
                    action: Action::Delete,
                    cloud_id: Some(id),
                    fields: &Default::default(),
                    strategy: None,
                    spec: Some(&options),
                    lineage: &lineage,
                    secrets: &none,
                    recorded: None,
                    retiring: &[],
                    unused: false,
                    attempted_since: None,
                })
                .await;
            if let Err(e) = deleted {
                return finish(
                    Err(ProviderError {
                        message: format!(
                            "done, but deleting {id}, left by an interrupted create, failed: {}; the next pass tries again",
                            e.message
                        ),
                        ..e
                    }),
                    p.known,
                    fingerprints,
                );
            }
        }
    }
    finish(result, p.known, fingerprints)
}

/// Records a finished change in the ledger and the attributes later changes read. Returns
/// true when it produced a secret output the cloud cannot give back and that consumers still
/// have to be written with (recorded under [`UNDELIVERED`]), or when it delivered one: the
/// ledger must be persisted before anything else starts.
#[allow(clippy::too_many_arguments)]
fn record(
    c: &Change,
    desired: &DesiredState,
    ledger: &mut Ledger,
    attrs: &mut crate::plan::planner::Attributes,
    outputs: &mut SecretOutputs,
    applied: Applied,
    known: serde_json::Map<String, Value>,
    fingerprints: BTreeMap<String, String>,
) -> bool {
    if c.action == Action::Delete {
        ledger.resources.remove(&c.address);
        ledger.pending.remove(&c.address);
        return false;
    }
    let Some(r) = desired.resources.get(&c.address) else {
        return false;
    };
    attrs.insert(c.address.clone(), Some(applied.attributes.clone()));
    let handed = delivered(c, r, ledger);
    // What this change superseded, with who may still hold it: a part superseded before
    // keeps its holders; the previous current part is held by every consumer of the
    // object's unrecoverable outputs that was not still waiting for it.
    let before = ledger.resources.get(&c.address);
    let held_before = before.map(retiring_held).unwrap_or_default();
    let waiting_before: std::collections::BTreeSet<String> = before
        .map(undelivered)
        .unwrap_or_default()
        .into_values()
        .flatten()
        .collect();
    let retiring: BTreeMap<String, std::collections::BTreeSet<String>> = applied
        .retiring
        .iter()
        .map(|id| {
            let holders = held_before.get(id).cloned().unwrap_or_else(|| {
                desired
                    .resources
                    .values()
                    .filter(|consumer| {
                        applied.secrets.keys().any(|output| {
                            unrecoverable(r.kind(), output)
                                && reads_secret(consumer, &c.address, output).is_some()
                        })
                    })
                    .map(|consumer| consumer.address.to_string())
                    .filter(|a| !waiting_before.contains(a))
                    .collect()
            });
            (id.clone(), holders)
        })
        .collect();
    // Who reads each unrecoverable output made now: they are owed it until written.
    let mut waiting = serde_json::Map::new();
    for output in applied.secrets.keys() {
        if !unrecoverable(r.kind(), output) {
            continue;
        }
        let consumers: Vec<Value> = desired
            .resources
            .values()
            .filter(|consumer| reads_secret(consumer, &c.address, output).is_some())
            .map(|consumer| Value::String(consumer.address.to_string()))
            .collect();
        if !consumers.is_empty() {
            waiting.insert(output.clone(), Value::Array(consumers));
        }
    }
    if !applied.secrets.is_empty() {
        outputs.insert(c.address.clone(), applied.secrets);
    }
    ledger.pending.remove(&c.address);
    // A write that did not touch the secret keeps the fingerprints it had.
    let fingerprints = if fingerprints.is_empty() {
        ledger
            .resources
            .get(&c.address)
            .map(|e| e.fingerprints.clone())
            .unwrap_or_default()
    } else {
        fingerprints
    };
    ledger.resources.insert(
        c.address.clone(),
        LedgerEntry {
            kind: r.kind().key().to_string(),
            id: applied.id,
            applied_hash: applied_hash(&known),
            applied: known,
            fingerprints,
            updated_at: applied.updated_at,
            attributes: applied
                .attributes
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
            depends_on: r.depends_on.clone(),
            prevent_destroy: r.lifecycle.prevent_destroy,
            options: {
                let mut options = local_options(r);
                if !waiting.is_empty() {
                    options.insert(UNDELIVERED.to_string(), Value::Object(waiting.clone()));
                }
                if !retiring.is_empty() {
                    options.insert(RETIRING.to_string(), retiring_value(&retiring));
                }
                options
            },
        },
    );
    !waiting.is_empty() || handed
}

/// Retires what a change made obsolete once nobody can hold it any more: for the change's
/// own resource and every producer it reads, parts the ledger lists under [`RETIRING`] go
/// once no consumer is still owed the producer's outputs ([`UNDELIVERED`] is empty). A
/// retirement that fails is reported as a failed outcome of the producer and kept in the
/// ledger: the next pass plans it again.
async fn retire_due<P: Changes, G: Progress>(
    c: &Change,
    desired: &DesiredState,
    ledger: &mut Ledger,
    provider: &P,
    report: &mut ApplyReport,
    progress: &G,
) {
    let mut producers = vec![c.address.clone()];
    if let Some(r) = desired.resources.get(&c.address) {
        for (_, source) in r.spec.secret_sources() {
            if let crate::desired::values::SecretSource::Ref(reference) = source {
                producers.push(reference.address.clone());
            }
        }
    }
    for address in producers {
        let Some(entry) = ledger.resources.get(&address) else {
            continue;
        };
        let held = retiring_held(entry);
        let parts: Vec<String> = held
            .iter()
            .filter(|(_, holders)| holders.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        if parts.is_empty() {
            continue;
        }
        let Some(kind) = Kind::parse(&entry.kind) else {
            continue;
        };
        let started = Instant::now();
        match provider.retire(kind, &entry.id, &parts).await {
            Ok(()) => {
                if let Some(e) = ledger.resources.get_mut(&address) {
                    let still: BTreeMap<_, _> = held
                        .into_iter()
                        .filter(|(_, holders)| !holders.is_empty())
                        .collect();
                    if still.is_empty() {
                        e.options.remove(RETIRING);
                    } else {
                        e.options
                            .insert(RETIRING.to_string(), retiring_value(&still));
                    }
                }
            }
            Err(e) => {
                let o = Outcome {
                    address: address.clone(),
                    action: Action::Update,
                    result: Err(format!(
                        "every consumer has the new value, but removing the superseded {} failed: {}; the next pass tries again",
                        parts.join(", "),
                        e.message
                    )),
                    skipped: false,
                    elapsed: started.elapsed(),
                    failure: Some(e.failure),
                };
                progress.finished(&o);
                report.outcomes.push(o);
            }
        }
    }
}

/// The secret field of `consumer` that reads `output` of `producer`, if any (its path, as
/// [`crate::desired::Spec::secret_sources`] names it).
fn reads_secret(
    consumer: &crate::desired::Resource,
    producer: &Address,
    output: &str,
) -> Option<String> {
    consumer
        .spec
        .secret_sources()
        .into_iter()
        .find(|(_, source)| {
            matches!(
                source,
                crate::desired::values::SecretSource::Ref(reference)
                    if reference.address == *producer && reference.attribute == output
            )
        })
        .map(|(field, _)| field)
}

/// A consumer written with its secret values: the producers it reads no longer owe it their
/// outputs.
///
/// Returns true when a producer's record changed (something it owed or superseded): the
/// ledger is then persisted before anything else starts, so that what it says a consumer
/// holds is never older than the cloud.
fn delivered(c: &Change, consumer: &crate::desired::Resource, ledger: &mut Ledger) -> bool {
    let mut changed = false;
    let wrote = |field: &str| {
        matches!(c.action, Action::Create | Action::Replace)
            || c.fields.iter().any(|f| f.path == field)
    };
    for (field, source) in consumer.spec.secret_sources() {
        let crate::desired::values::SecretSource::Ref(reference) = source else {
            continue;
        };
        if !wrote(&field) {
            continue;
        }
        let Some(producer) = ledger.resources.get_mut(&reference.address) else {
            continue;
        };
        // It no longer holds what the producer superseded.
        let mut held = retiring_held(producer);
        if !held.is_empty() {
            changed = true;
            for holders in held.values_mut() {
                holders.remove(&consumer.address.to_string());
            }
            producer
                .options
                .insert(RETIRING.to_string(), retiring_value(&held));
        }
        let Some(Value::Object(waiting)) = producer.options.get_mut(UNDELIVERED) else {
            continue;
        };
        let me = consumer.address.to_string();
        if let Some(Value::Array(list)) = waiting.get_mut(&reference.attribute) {
            changed = true;
            list.retain(|a| a.as_str() != Some(me.as_str()));
            if list.is_empty() {
                waiting.remove(&reference.attribute);
            }
        }
        if waiting.is_empty() {
            producer.options.remove(UNDELIVERED);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::keep_live;

    #[test]
    fn an_ignored_path_is_sent_as_the_cloud_has_it_and_only_inside_what_is_sent() {
        let live = json!({
            "description": "theirs",
            "node_pools": { "workers": { "count": 5, "size": "s" }, "gone": { "count": 1 } },
        });
        let Value::Object(live) = live else {
            unreachable!()
        };
        let Value::Object(mut sent) = json!({
            "description": "ours",
            "node_pools": { "workers": { "count": 3, "size": "s" }, "new": { "count": 2 } },
        }) else {
            unreachable!()
        };
        for path in [
            "description",
            "node_pools.workers.count",
            // Not in the cloud: nobody set it, so it is sent as desired.
            "node_pools.new.count",
            // Not sent (a pool the desired state does not have): not added.
            "node_pools.gone.count",
            "tags",
        ] {
            keep_live(&live, &mut sent, path);
        }
        assert_eq!(
            Value::Object(sent),
            json!({
                "description": "theirs",
                "node_pools": { "workers": { "count": 5, "size": "s" }, "new": { "count": 2 } },
            })
        );
    }
}
