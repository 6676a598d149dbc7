//! Plan computation at 1,000, 10,000 and 50,000 resources: a first plan (everything to
//! create) and a no-drift plan (everything exists and matches: the daemon's usual pass).
//! And loading: the same desired state read, expanded and validated from plain tables, and
//! from one module called with `for_each` (`load/plain`, `load/module_for_each`).
//! `cargo bench --bench plan`; the figures are reported in docs/performance.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_main};
use provisioner::desired::{self, DesiredState};
use provisioner::ledger::Ledger;
use provisioner::live::LiveState;
use provisioner::plan;
use provisioner::sim::fake::FakeCloud;

/// A desired state of `n` resources: domains with records (each record references its
/// domain), GitHub variables, and VPCs, in the proportions of a real platform.
fn desired_of(n: usize) -> DesiredState {
    let dir = desired_dir(n);
    let state = desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.resources.len(), n);
    state
}

/// The folder [`desired_of`] loads.
fn desired_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let domains = (n / 100).max(1);
    let vpcs = (n / 50).max(1);
    let variables = n / 5;
    let records = n - domains - vpcs - variables;
    let mut text = String::with_capacity(n * 150);
    for d in 0..domains {
        text.push_str(&format!(
            "[digitalocean.domain.d{d}]\nname = \"d{d}.example.com\"\n\n"
        ));
    }
    for v in 0..vpcs {
        text.push_str(&format!(
            "[digitalocean.vpc.v{v}]\nname = \"vpc-{v}\"\nregion = \"nyc3\"\n\n"
        ));
    }
    for r in 0..records {
        text.push_str(&format!(
            "[digitalocean.domain_record.r{r}]\ndomain = \"${{digitalocean.domain.d{}.name}}\"\ntype = \"TXT\"\nname = \"r{r}\"\ndata = \"value {r}\"\n\n",
            r % domains
        ));
    }
    for v in 0..variables {
        text.push_str(&format!(
            "[github.actions_variable.v{v}]\nrepository = \"org/repo-{}\"\nname = \"VAR_{v}\"\nvalue = \"${{digitalocean.vpc.v{}.name}}\"\n\n",
            v % 20,
            v % vpcs
        ));
    }
    // Split into files of at most a few MiB, as a real folder would be.
    for (i, chunk) in text
        .split_inclusive("\n\n")
        .collect::<Vec<_>>()
        .chunks(5_000)
        .enumerate()
    {
        std::fs::write(dir.path().join(format!("part{i:03}.toml")), chunk.concat()).expect("write");
    }
    dir
}

/// `n` resources made by a module (a domain, its records and a variable) called with
/// `for_each` over `n / 10` keys: what loading costs when the expansion does the work.
fn module_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let calls = (n / 10).max(1);
    let module = "[variable.zone]\ntype = \"string\"\n\n\
        [digitalocean.domain.d]\nname = \"${var.zone}\"\n\n\
        [digitalocean.domain_record.r]\nfor_each = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\"]\n\
        domain = \"${digitalocean.domain.d.name}\"\ntype = \"TXT\"\nname = \"${each.key}\"\ndata = \"value ${each.key}\"\n\n\
        [github.actions_variable.v]\nrepository = \"org/${var.zone}\"\nname = \"ZONE\"\nvalue = \"${digitalocean.domain.d.name}\"\n\n\
        [output.zone]\nvalue = \"${digitalocean.domain.d.name}\"\n";
    std::fs::create_dir_all(dir.path().join("modules/zone")).expect("mkdir");
    std::fs::write(dir.path().join("modules/zone/main.toml"), module).expect("write");
    let keys: Vec<String> = (0..calls).map(|i| format!("\"z{i}\"")).collect();
    std::fs::write(
        dir.path().join("main.toml"),
        format!(
            "[module.zone]\nsource = \"modules/zone\"\nfor_each = [{}]\nzone = \"${{each.key}}.example.com\"\n",
            keys.join(", ")
        ),
    )
    .expect("write");
    dir
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    // `PLAN_BENCH_SIZES=10000` measures (or profiles) one size alone.
    let sizes: Vec<usize> = std::env::var("PLAN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    for n in sizes {
        let d = desired_of(n);
        let empty_ledger = Ledger::default();
        let empty_live = LiveState::default();
        group.bench_with_input(BenchmarkId::new("create_all", n), &n, |b, _| {
            b.iter(|| black_box(plan::plan(&d, &empty_ledger, &empty_live).expect("plan")))
        });
        let (p, _) = plan::plan(&d, &empty_ledger, &empty_live).expect("plan");
        let mut ledger = Ledger::new("bench");
        let cloud = FakeCloud::default();
        cloud
            .apply_plan_blocking(&p, &d, &mut ledger, None)
            .expect("apply");
        let live = cloud.live();
        group.bench_with_input(BenchmarkId::new("no_drift", n), &n, |b, _| {
            b.iter(|| {
                let (p, _) = plan::plan(&d, &ledger, &live).expect("plan");
                assert!(!p.has_changes());
                black_box(p)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    for n in [1_000, 10_000] {
        let plain = desired_dir(n);
        group.bench_with_input(BenchmarkId::new("plain", n), &n, |b, _| {
            b.iter(|| black_box(desired::load(plain.path()).expect("valid")))
        });
        let module = module_dir(n);
        assert_eq!(
            desired::load(module.path()).expect("valid").resources.len(),
            n
        );
        group.bench_with_input(BenchmarkId::new("module_for_each", n), &n, |b, _| {
            b.iter(|| black_box(desired::load(module.path()).expect("valid")))
        });
    }
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
