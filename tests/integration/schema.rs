//! Editor support (issue 25, item 4): the JSON Schema `provisioner schema` prints is the one
//! the worked example declares; a real TOML language tool (`taplo check` from `@taplo/cli`,
//! installed by `.ci/run` into `.ci/node_modules`) accepts the worked example and refuses a
//! known-bad file naming the field; the schema and `validate` agree on good and bad
//! snippets; `provisioner fmt` formats canonically and keeps comments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_text() -> String {
    let s = provisioner::desired::json_schema::json_schema();
    format!("{}\n", serde_json::to_string_pretty(&s).unwrap())
}

/// `.ci/node_modules/.bin/taplo`, or `None` (with a message) when it is not installed and
/// this is not CI. In CI (`CI` set) a missing taplo fails the test.
fn taplo() -> Option<PathBuf> {
    let bin = root().join(".ci/node_modules/.bin/taplo");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: `.ci/run` installs it with `npm ci --prefix .ci`",
        bin.display()
    );
    eprintln!(
        "skipped: {} is missing (run `npm ci --prefix .ci`, or `.ci/run`)",
        bin.display()
    );
    None
}

/// Runs `taplo check` with the generated schema (from a temporary file, so the test checks
/// the schema of this build, not the committed copy) over `files`.
fn taplo_check(taplo: &Path, files: &[PathBuf]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, schema_text()).unwrap();
    Command::new(taplo)
        .args(["check", "--no-auto-config", "--colors", "never", "--schema"])
        .arg(format!("file://{}", schema.display()))
        .args(files)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn worked_example() -> Vec<PathBuf> {
    let (files, diags) = provisioner::desired::load::list_files(&root().join("desired-state"));
    assert!(diags.is_empty(), "{diags:?}");
    assert!(files.len() >= 9, "{files:?}");
    files
}

#[test]
fn the_committed_schema_is_the_one_the_model_generates() {
    let path = root().join("desired-state/schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != schema_text() {
        if std::env::var_os("PROVISIONER_UPDATE_DOCS").is_some() {
            std::fs::write(&path, schema_text()).unwrap();
        } else {
            panic!(
                "desired-state/schema.json is out of date: run PROVISIONER_UPDATE_DOCS=1 cargo test --test integration schema::"
            );
        }
    }
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), schema_text());
}

#[test]
fn every_file_of_the_worked_example_declares_the_schema() {
    let base = root().join("desired-state");
    for f in worked_example() {
        let text = std::fs::read_to_string(&f).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let rel = f.strip_prefix(&base).unwrap();
        let up = "../".repeat(rel.components().count() - 1);
        let want = if up.is_empty() {
            "#:schema ./schema.json".to_string()
        } else {
            format!("#:schema {up}schema.json")
        };
        assert_eq!(first, want, "{}", f.display());
    }
}

#[test]
fn taplo_accepts_the_worked_example() {
    let Some(taplo) = taplo() else { return };
    let out = taplo_check(&taplo, &worked_example());
    assert!(
        out.status.success(),
        "taplo check refused the worked example:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn taplo_refuses_a_known_bad_file_naming_the_field() {
    let Some(taplo) = taplo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\nip_rnage = \"10.10.0.0/16\"\n",
    )
    .unwrap();
    let out = taplo_check(&taplo, &[bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "taplo accepted a bad file:\n{stderr}"
    );
    assert!(stderr.contains("ip_rnage"), "{stderr}");
    assert!(stderr.contains("bad.toml:4:1"), "{stderr}");
}

/// Snippets that `validate` accepts; the schema must accept them too.
const GOOD: &[(&str, &str)] = &[
    (
        "a vpc",
        "[digitalocean.vpc.a]\nname = \"a\"\nregion = \"nyc3\"\nip_range = \"10.10.0.0/16\"\n",
    ),
    (
        "settings",
        "[settings]\ninterval = \"10m\"\nmode = \"detect\"\n[settings.concurrency]\naws = 3\n[settings.aws]\nregion = \"eu-west-1\"\n",
    ),
    (
        "a cluster with a pool, lifecycle and depends_on",
        "[digitalocean.vpc.v]\nname = \"v\"\nregion = \"nyc3\"\n\
         [digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"1.33\"\n\
         vpc_uuid = \"${digitalocean.vpc.v.id}\"\ndepends_on = [\"digitalocean.vpc.v\"]\n\
         [digitalocean.kubernetes_cluster.k.node_pools.w]\nsize = \"s-2vcpu-4gb\"\ncount = 2\n\
         taints = [{ key = \"k\", effect = \"NoSchedule\" }]\n\
         [digitalocean.kubernetes_cluster.k.lifecycle]\nprevent_destroy = true\nignore_changes = [\"node_pools.w.count\"]\n",
    ),
    (
        "secrets from env, file, generate and a reference",
        "[aws.secretsmanager_secret.g]\nname = \"app/g\"\nvalue = { generate = { length = 40, charset = \"hex\" } }\n\
         [github.actions_secret.e]\nrepository = \"o/r\"\nname = \"E\"\nvalue = { env = \"E_VALUE\" }\n\
         [github.actions_secret.f]\nrepository = \"o/r\"\nname = \"F\"\nvalue = { file = \"f.txt\" }\n\
         [github.actions_secret.r]\nrepository = \"o/r\"\nname = \"R\"\nvalue = \"${aws.secretsmanager_secret.g.value}\"\n",
    ),
    (
        "a move",
        "[digitalocean.vpc.new]\nname = \"a\"\nregion = \"nyc3\"\n[[moved]]\nfrom = \"digitalocean.vpc.old\"\nto = \"digitalocean.vpc.new\"\n",
    ),
    (
        "variables of every type, a for_each, substitutions in typed fields and an output",
        "[variable.nodes]\ntype = \"number\"\ndefault = 2\nmin = 1\n\
         [variable.ha]\ntype = \"bool\"\ndefault = false\n\
         [variable.token]\ntype = \"secret\"\ndefault = { env = \"T\" }\n\
         [variable.regions]\ntype = \"map(string)\"\ndefault = { a = \"nyc3\", b = \"fra1\" }\n\
         [digitalocean.vpc.v]\nfor_each = \"${var.regions}\"\nname = \"v-${each.key}\"\nregion = \"${each.value}\"\n\
         [digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"1.33\"\nha = \"${var.ha}\"\n\
         [digitalocean.kubernetes_cluster.k.node_pools.w]\nsize = \"s-2vcpu-4gb\"\ncount = \"${var.nodes}\"\n\
         [github.actions_secret.t]\nrepository = \"o/r\"\nname = \"T\"\nvalue = \"${var.token}\"\n\
         [output.vpc_a]\nvalue = '${digitalocean.vpc.v[\"a\"].id}'\nsensitive = true\n",
    ),
    (
        "a move into a for_each instance",
        "[digitalocean.vpc.new]\nfor_each = [\"a\"]\nname = \"a\"\nregion = \"nyc3\"\n[[moved]]\nfrom = \"digitalocean.vpc.old\"\nto = 'digitalocean.vpc.new[\"a\"]'\n",
    ),
];

/// Snippets that `validate` refuses for a reason the schema can see; the schema must refuse
/// them too.
const BAD: &[(&str, &str)] = &[
    ("an unknown provider", "[azure.vm.a]\nname = \"a\"\n"),
    (
        "an unknown field in a variable",
        "[variable.x]\ntype = \"string\"\ndefualt = \"a\"\n",
    ),
    (
        "a plain string where a number or a substitution belongs",
        "[variable.n]\ndefault = 2\n[digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"1.33\"\n\
         [digitalocean.kubernetes_cluster.k.node_pools.w]\nsize = \"s-2vcpu-4gb\"\ncount = \"two\"\n",
    ),
    (
        "an unknown kind",
        "[digitalocean.droplet.a]\nname = \"a\"\n",
    ),
    (
        "an unknown field",
        "[digitalocean.vpc.a]\nname = \"a\"\nregion = \"nyc3\"\nip_rnage = \"10.10.0.0/16\"\n",
    ),
    (
        "a missing required field",
        "[digitalocean.vpc.a]\nname = \"a\"\n",
    ),
    (
        "a string for an integer",
        "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"A\"\nname = \"@\"\ndata = \"192.0.2.1\"\nttl = \"300\"\n",
    ),
    (
        "an integer out of range",
        "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"A\"\nname = \"@\"\ndata = \"192.0.2.1\"\nttl = 5\n",
    ),
    (
        "a value outside an enum",
        "[digitalocean.domain_record.r]\ndomain = \"example.com\"\ntype = \"PTR\"\nname = \"@\"\ndata = \"192.0.2.1\"\n",
    ),
    (
        "a plain-text secret",
        "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"S\"\nvalue = \"hunter2\"\n",
    ),
    (
        "generate where the kind cannot keep the value",
        "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"S\"\nvalue = { generate = { length = 32 } }\n",
    ),
    (
        "an unknown lifecycle option",
        "[digitalocean.vpc.a]\nname = \"a\"\nregion = \"nyc3\"\n[digitalocean.vpc.a.lifecycle]\nprevent_destroyed = true\n",
    ),
    ("an unknown setting", "[settings]\nintervall = \"5m\"\n"),
    (
        "a setting of the wrong type",
        "[settings]\nprune = \"yes\"\n",
    ),
    (
        "depends_on that is not a list",
        "[digitalocean.vpc.a]\nname = \"a\"\nregion = \"nyc3\"\ndepends_on = \"digitalocean.vpc.b\"\n",
    ),
    (
        "a move with an unknown field",
        "[digitalocean.vpc.new]\nname = \"a\"\nregion = \"nyc3\"\n[[moved]]\nfrom = \"digitalocean.vpc.old\"\nto = \"digitalocean.vpc.new\"\nwhy = \"renamed\"\n",
    ),
];

#[test]
fn the_schema_agrees_with_validate() {
    let taplo = taplo();
    let mut disagreements = Vec::new();
    for (good, cases) in [(true, GOOD), (false, BAD)] {
        for (what, text) in cases {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("main.toml");
            std::fs::write(&file, text).unwrap();
            let validated = provisioner::desired::load(dir.path());
            if validated.is_ok() != good {
                disagreements.push(format!(
                    "validate {} {what}: {:?}",
                    if good { "refused" } else { "accepted" },
                    validated.err().map(|e| e.to_string())
                ));
            }
            if let Some(taplo) = &taplo {
                let out = taplo_check(taplo, &[file]);
                if out.status.success() != good {
                    disagreements.push(format!(
                        "the schema {} {what}:\n{}",
                        if good { "refused" } else { "accepted" },
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn fmt(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .arg("-d")
        .arg(dir)
        .arg("fmt")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_worked_example_is_in_canonical_form() {
    let out = fmt(&["--check"], &root().join("desired-state"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fmt_check_lists_what_would_change_and_fmt_rewrites_it_keeping_comments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("net")).unwrap();
    let messy = dir.path().join("net/vpc.toml");
    let tidy = dir.path().join("tidy.toml");
    let messy_text = "# the network\n[digitalocean.vpc.a]\nname=\"a\"    # its name\n   region =   \"nyc3\"\n\n\n\n\nip_range = \"10.10.0.0/16\"\n";
    std::fs::write(&messy, messy_text).unwrap();
    std::fs::write(&tidy, "[digitalocean.domain.d]\nname = \"example.com\"\n").unwrap();

    let out = fmt(&["--check"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.trim(), format!("would reformat {}", messy.display()));
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        messy_text,
        "--check changes nothing"
    );

    let out = fmt(&[], dir.path());
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "# the network\n[digitalocean.vpc.a]\nname = \"a\" # its name\nregion = \"nyc3\"\n\n\nip_range = \"10.10.0.0/16\"\n"
    );
    assert!(fmt(&["--check"], dir.path()).status.success());
    assert!(provisioner::desired::load(dir.path()).is_ok());
}

#[test]
fn fmt_refuses_a_file_that_does_not_parse_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[digitalocean.vpc.a]\nname = \n").unwrap();
    let out = fmt(&[], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "[digitalocean.vpc.a]\nname = \n"
    );
}

/// `fmt` never rewrites what a link points at outside the folder, walked or named.
#[test]
fn fmt_does_not_write_through_a_link_to_a_file_outside() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("elsewhere.toml");
    let messy = "[digitalocean.vpc.a]\nname=\"a\"\n   region =   \"nyc3\"\n";
    std::fs::write(&target, messy).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("a.toml")).unwrap();
    let walked = fmt(&[], dir.path());
    assert!(!walked.status.success());
    let named = fmt(&[dir.path().join("a.toml").to_str().unwrap()], dir.path());
    assert!(!named.status.success());
    assert!(
        String::from_utf8_lossy(&named.stderr).contains("is a symbolic link: not formatted"),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), messy);
}
