//! Environments, variables, outputs, `for_each` and modules (`desired::expand`): what they
//! expand to, and where each problem points — through the module call chain.

use std::collections::BTreeMap;

use provisioner_core::desired::refs::Address;
use provisioner_core::desired::{self, DesiredState, Inputs, ValidationErrors};

mod common;
use common::folder;

fn env(name: &str) -> Inputs {
    Inputs {
        environment: Some(name.into()),
        ..Inputs::default()
    }
}

#[track_caller]
fn load(files: &[(&str, &str)], inputs: &Inputs) -> DesiredState {
    let dir = folder(files);
    match desired::load_with(dir.path(), inputs) {
        Ok(d) => d,
        Err(e) => panic!("expected a valid desired state:\n{e}"),
    }
}

#[track_caller]
fn errors(files: &[(&str, &str)], inputs: &Inputs) -> (ValidationErrors, String) {
    let dir = folder(files);
    match desired::load_with(dir.path(), inputs) {
        Ok(_) => panic!("expected validation to fail for {files:?}"),
        Err(e) => {
            // Paths are shown relative to the temporary folder, for stable assertions.
            let text = e
                .to_string()
                .replace(&format!("{}/", dir.path().display()), "");
            (e, text)
        }
    }
}

/// Asserts one problem whose message contains `message`, located at a place ending with `at`.
#[track_caller]
fn expect(files: &[(&str, &str)], inputs: &Inputs, at: &str, message: &str) -> String {
    let (e, text) = errors(files, inputs);
    let hit = e.diagnostics.iter().any(|d| {
        let whole = format!("{}: {}", d.field.clone().unwrap_or_default(), d.message);
        whole.contains(message) && d.location(&e.sources).ends_with(at)
    });
    assert!(hit, "no problem `{message}` at `{at}` in:\n{text}");
    text
}

fn field(d: &DesiredState, address: &str, name: &str) -> serde_json::Value {
    let a = Address::parse(address).expect("address");
    let r = d
        .resources
        .get(&a)
        .unwrap_or_else(|| panic!("{address} not in {:?}", d.resources.keys()));
    r.spec_json[name].clone()
}

const VARS: &str = r#"
[variable.region]
type = "string"
default = "nyc3"
allowed = ["nyc3", "fra1", "ams3"]
description = "where everything lives"

[variable.prefix]
type = "string"

[digitalocean.vpc.main]
name = "${var.prefix}-net"
region = "${var.region}"
"#;

#[test]
fn variables_take_the_default_then_the_process_environment_then_the_environment_file_then_the_command_line()
 {
    let files = [
        ("main.toml", VARS),
        (
            "environments/staging.toml",
            "[variables]\nprefix = \"stg\"\nregion = \"ams3\"\n",
        ),
        (
            "environments/production.toml",
            "[variables]\nprefix = \"prod\"\n",
        ),
    ];
    let d = load(&files, &env("production"));
    assert_eq!(field(&d, "digitalocean.vpc.main", "name"), "prod-net");
    assert_eq!(field(&d, "digitalocean.vpc.main", "region"), "nyc3");
    assert_eq!(d.environment_name(), Some("production"));
    assert_eq!(d.environments, ["production", "staging"]);

    let mut inputs = env("production");
    inputs.env_vars = BTreeMap::from([("region".to_string(), "fra1".to_string())]);
    let d = load(&files, &inputs);
    assert_eq!(field(&d, "digitalocean.vpc.main", "region"), "fra1");

    // The environment's file wins over the process environment; `--var` wins over both.
    let mut inputs = env("staging");
    inputs.env_vars = BTreeMap::from([("region".to_string(), "fra1".to_string())]);
    let d = load(&files, &inputs);
    assert_eq!(field(&d, "digitalocean.vpc.main", "region"), "ams3");
    inputs.vars = vec![
        ("region".into(), "fra1".into()),
        ("region".into(), "nyc3".into()),
    ];
    let d = load(&files, &inputs);
    assert_eq!(field(&d, "digitalocean.vpc.main", "region"), "nyc3");
    assert_eq!(field(&d, "digitalocean.vpc.main", "name"), "stg-net");
}

#[test]
fn a_desired_state_with_environments_needs_one_chosen_and_names_them() {
    let files = [
        ("main.toml", VARS),
        (
            "environments/staging.toml",
            "[variables]\nprefix = \"stg\"\n",
        ),
        (
            "environments/production.toml",
            "[variables]\nprefix = \"p\"\n",
        ),
    ];
    let (_, text) = errors(&files, &Inputs::default());
    assert!(
        text.contains("several environments (production, staging): choose one"),
        "{text}"
    );
    assert!(text.contains("-e NAME"), "{text}");
    let (_, text) = errors(&files, &env("stagin"));
    assert!(text.contains("there is no environment `stagin`"), "{text}");
    assert!(text.contains("did you mean `staging`?"), "{text}");
    let (_, text) = errors(&[("main.toml", VARS)], &env("staging"));
    assert!(text.contains("has no `environments/` folder"), "{text}");
}

#[test]
fn a_value_of_the_wrong_type_points_at_the_environment_file_and_the_declaration() {
    let text = expect(
        &[
            ("main.toml", VARS),
            (
                "environments/staging.toml",
                "[variables]\nprefix = \"stg\"\nregion = 3\n",
            ),
        ],
        &env("staging"),
        "environments/staging.toml:3:10",
        "variable `region` is a string, found an integer",
    );
    assert!(
        text.contains("note: variable `region` declared at main.toml:2:11"),
        "{text}"
    );
}

#[test]
fn checks_of_a_variable_name_the_value_and_the_allowed_ones() {
    expect(
        &[
            ("main.toml", VARS),
            (
                "environments/staging.toml",
                "[variables]\nprefix = \"stg\"\nregion = \"abc1\"\n",
            ),
        ],
        &env("staging"),
        "environments/staging.toml:3:10",
        "\"abc1\" is not allowed for variable `region`: one of \"nyc3\", \"fra1\", \"ams3\"",
    );
    let decl = r#"
[variable.size]
type = "number"
min = 1
max = 10
error_message = "between 1 and 10 nodes"

[variable.name]
type = "string"
pattern = "[a-z]+"
"#;
    let mut inputs = Inputs {
        vars: vec![("size".into(), "11".into()), ("name".into(), "Bad".into())],
        ..Inputs::default()
    };
    let (_, text) = errors(&[("main.toml", decl)], &inputs);
    assert!(
        text.contains("11 is above the maximum 10 of variable `size`"),
        "{text}"
    );
    assert!(text.contains("help: between 1 and 10 nodes"), "{text}");
    assert!(
        text.contains("\"Bad\" does not match the pattern `[a-z]+` of variable `name`"),
        "{text}"
    );
    inputs.vars = vec![("size".into(), "many".into()), ("name".into(), "ok".into())];
    let (_, text) = errors(&[("main.toml", decl)], &inputs);
    assert!(
        text.contains("`many` is not a TOML value for variable `size` (a number)"),
        "{text}"
    );
}

#[test]
fn missing_unknown_and_unused_values_are_errors() {
    let (_, text) = errors(&[("main.toml", VARS)], &Inputs::default());
    assert!(text.contains("variable `prefix` has no value"), "{text}");
    let inputs = Inputs {
        vars: vec![("prefix".into(), "x".into()), ("regoin".into(), "x".into())],
        ..Inputs::default()
    };
    let (_, text) = errors(&[("main.toml", VARS)], &inputs);
    assert!(
        text.contains("`regoin` is not a variable of the root module"),
        "{text}"
    );
    assert!(text.contains("did you mean `region`?"), "{text}");
    let text = expect(
        &[(
            "main.toml",
            &format!(
                "{VARS}\n[digitalocean.vpc.other]\nname = \"${{var.prefx}}\"\nregion = \"nyc3\"\n"
            ),
        )],
        &Inputs {
            vars: vec![("prefix".into(), "p".into())],
            ..Inputs::default()
        },
        "main.toml:16:8",
        "`${var.prefx}` names no variable with a value",
    );
    assert!(text.contains("did you mean `var.prefix`?"), "{text}");
}

#[test]
fn a_variable_value_cannot_name_a_resource() {
    expect(
        &[
            ("main.toml", VARS),
            (
                "environments/staging.toml",
                "[variables]\nprefix = \"${digitalocean.vpc.main.id}\"\n",
            ),
        ],
        &env("staging"),
        "environments/staging.toml:2:10",
        "the value of variable `prefix` holds a reference",
    );
}

#[test]
fn for_each_makes_one_instance_per_key_with_each_key_and_each_value() {
    let d = load(
        &[(
            "main.toml",
            r#"
[digitalocean.spaces_bucket.media]
for_each = { images = "nyc3", "logs.archive" = "fra1" }
name = "example-${each.key}"
region = "${each.value}"

[digitalocean.spaces_bucket.plain]
for_each = ["a", "b"]
name = "plain-${each.value}"
region = "nyc3"

[digitalocean.vpc.main]
name = "${digitalocean.spaces_bucket.media[\"images\"].name}"
region = "nyc3"
"#,
        )],
        &Inputs::default(),
    );
    let names: Vec<String> = d.resources.keys().map(|a| a.to_string()).collect();
    assert_eq!(
        names,
        [
            "digitalocean.spaces_bucket.media[\"images\"]",
            "digitalocean.spaces_bucket.media[\"logs.archive\"]",
            "digitalocean.spaces_bucket.plain[\"a\"]",
            "digitalocean.spaces_bucket.plain[\"b\"]",
            "digitalocean.vpc.main",
        ]
    );
    assert_eq!(
        field(
            &d,
            "digitalocean.spaces_bucket.media[\"logs.archive\"]",
            "name"
        ),
        "example-logs.archive"
    );
    assert_eq!(
        field(
            &d,
            "digitalocean.spaces_bucket.media[\"logs.archive\"]",
            "region"
        ),
        "fra1"
    );
    let vpc = &d.resources[&Address::parse("digitalocean.vpc.main").unwrap()];
    assert!(
        vpc.depends_on
            .contains(&Address::parse("digitalocean.spaces_bucket.media[\"images\"]").unwrap()),
        "{:?}",
        vpc.depends_on
    );
}

#[test]
fn for_each_problems_point_at_the_key() {
    expect(
        &[(
            "main.toml",
            "[digitalocean.vpc.v]\nfor_each = [\"a b\"]\nname = \"x\"\nregion = \"nyc3\"\n",
        )],
        &Inputs::default(),
        "main.toml:2:13",
        "\"a b\" cannot be a `for_each` key",
    );
    expect(
        &[(
            "main.toml",
            "[digitalocean.vpc.v]\nfor_each = [\"a\", \"a\"]\nname = \"x\"\nregion = \"nyc3\"\n",
        )],
        &Inputs::default(),
        "main.toml:2:18",
        "\"a\" is listed twice",
    );
    expect(
        &[(
            "main.toml",
            "[digitalocean.vpc.v]\nname = \"${each.key}\"\nregion = \"nyc3\"\n",
        )],
        &Inputs::default(),
        "main.toml:2:8",
        "`${each.key}` is used outside a `for_each`",
    );
}

const BUCKETS_MODULE: &str = r#"
[variable.app]
type = "string"

[variable.region]
type = "string"
default = "nyc3"

[digitalocean.spaces_bucket.data]
name = "${var.app}-data"
region = "${var.region}"

[digitalocean.vpc.net]
name = "${var.app}-${digitalocean.spaces_bucket.data.name}"
region = "${var.region}"
depends_on = ["digitalocean.spaces_bucket.data"]

[output.bucket]
value = "${digitalocean.spaces_bucket.data.bucket_domain_name}"
"#;

#[test]
fn modules_are_instantiated_with_their_inputs_and_read_through_their_outputs() {
    let d = load(
        &[
            ("modules/app/main.toml", BUCKETS_MODULE),
            (
                "main.toml",
                r#"
[module.chat]
source = "modules/app"
app = "chat-${environment.name}"

[module.files]
source = "modules/app"
for_each = { cloud = "fra1", backup = "ams3" }
app = "${each.key}"
region = "${each.value}"

[digitalocean.vpc.edge]
name = "${module.chat.bucket}"
region = "nyc3"

[output.chat_bucket]
value = "${module.chat.bucket}"
description = "where chat keeps its files"
"#,
            ),
            ("environments/staging.toml", ""),
        ],
        &env("staging"),
    );
    let names: Vec<String> = d.resources.keys().map(|a| a.to_string()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(
        names.contains(&"module.files[\"backup\"].digitalocean.spaces_bucket.data".to_string())
    );
    assert_eq!(
        field(&d, "module.chat.digitalocean.spaces_bucket.data", "name"),
        "chat-staging-data"
    );
    assert_eq!(
        field(
            &d,
            "module.files[\"cloud\"].digitalocean.spaces_bucket.data",
            "region"
        ),
        "fra1"
    );
    // References inside a module stay inside it; the caller reads through an output.
    assert_eq!(
        field(&d, "module.chat.digitalocean.vpc.net", "name"),
        "chat-staging-${module.chat.digitalocean.spaces_bucket.data.name}"
    );
    assert_eq!(
        field(&d, "digitalocean.vpc.edge", "name"),
        "${module.chat.digitalocean.spaces_bucket.data.bucket_domain_name}"
    );
    let net = &d.resources[&Address::parse("module.chat.digitalocean.vpc.net").unwrap()];
    assert!(
        net.depends_on
            .contains(&Address::parse("module.chat.digitalocean.spaces_bucket.data").unwrap())
    );
    let out = &d.outputs["chat_bucket"];
    assert_eq!(
        out.value,
        "${module.chat.digitalocean.spaces_bucket.data.bucket_domain_name}"
    );
    assert!(!out.sensitive);
}

#[test]
fn a_problem_inside_a_module_names_the_call_chain() {
    let text = expect(
        &[
            (
                "modules/app/main.toml",
                "[variable.app]\ntype = \"string\"\n\n[digitalocean.vpc.net]\nname = \"${var.app}\"\nregion = \"abc\"\n",
            ),
            (
                "main.toml",
                "[module.one]\nsource = \"modules/app\"\napp = \"x\"\n",
            ),
        ],
        &Inputs::default(),
        "modules/app/main.toml:6:10",
        "module.one.digitalocean.vpc.net.region",
    );
    assert!(
        text.contains("note: in module.one, called at main.toml:1:9"),
        "{text}"
    );
    // A missing input, and an input the module does not declare.
    let (_, text) = errors(
        &[
            (
                "modules/app/main.toml",
                "[variable.app]\ntype = \"string\"\n",
            ),
            (
                "main.toml",
                "[module.one]\nsource = \"modules/app\"\nap = \"x\"\n",
            ),
        ],
        &Inputs::default(),
    );
    assert!(text.contains("the module has no variable `ap`"), "{text}");
    assert!(text.contains("did you mean `app`?"), "{text}");
    assert!(text.contains("variable `app` has no value"), "{text}");
    assert!(
        text.contains("in module.one, called at main.toml:1:9"),
        "{text}"
    );
}

#[test]
fn module_sources_stay_below_modules_and_cannot_contain_themselves() {
    let (_, text) = errors(
        &[
            ("lib/app/main.toml", "[variable.x]\ndefault = 1\n"),
            ("main.toml", "[module.one]\nsource = \"lib/app\"\n"),
        ],
        &Inputs::default(),
    );
    assert!(
        text.contains("is not a module folder below `modules/`"),
        "{text}"
    );
    let (_, text) = errors(
        &[
            ("modules/a/main.toml", "[module.again]\nsource = \".\"\n"),
            ("main.toml", "[module.one]\nsource = \"modules/a\"\n"),
        ],
        &Inputs::default(),
    );
    assert!(text.contains("a module cannot contain itself"), "{text}");
}

#[test]
fn an_output_may_not_carry_a_secret_or_name_what_does_not_exist() {
    let mail = r#"
[aws.iam_smtp_user.smtp]
name = "smtp"

[output.password]
value = "${aws.iam_smtp_user.smtp.smtp_password}"

[output.typo]
value = "${aws.iam_smtp_user.smtp.nmae}"
"#;
    let (_, text) = errors(&[("main.toml", mail)], &Inputs::default());
    assert!(
        text.contains(
            "is a secret output: an output is kept in the ledger, which never holds a secret"
        ),
        "{text}"
    );
    assert!(text.contains("has no attribute `nmae`"), "{text}");
}

#[test]
fn settings_take_variables() {
    let d = load(
        &[(
            "main.toml",
            "[variable.ledger]\ndefault = \"file://elsewhere\"\n\n[settings]\nledger = \"${var.ledger}\"\n",
        )],
        &Inputs::default(),
    );
    assert_eq!(
        d.settings.ledger.as_ref().map(|l| l.0.as_str()),
        Some("file://elsewhere")
    );
}

// ---- what breaking it found -----------------------------------------------------------------

#[test]
fn an_environment_file_that_links_outside_the_folder_is_not_read() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("credentials");
    std::fs::write(&secret, "[default]\naws_secret_access_key = CANARY-7f3a\n").unwrap();
    let dir = folder(&[("main.toml", VARS)]);
    std::fs::create_dir(dir.path().join("environments")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("environments/prod.toml")).unwrap();
    let e = desired::load_with(dir.path(), &env("prod")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("links outside the desired-state folder"),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");
    assert_eq!(e.diagnostics.len(), 1, "{text}");
}

const SECRET_VAR: &str = "[variable.pw]\ntype = \"secret\"\n\n[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"S\"\nvalue = \"${var.pw}\"\n";

#[test]
fn a_secret_variable_s_value_is_never_shown_in_a_problem() {
    for inputs in [
        Inputs {
            vars: vec![("pw".into(), "CANARY-7f3a".into())],
            ..Inputs::default()
        },
        Inputs {
            vars: vec![("pw".into(), "\"CANARY-7f3a\"".into())],
            ..Inputs::default()
        },
        Inputs {
            env_vars: BTreeMap::from([("pw".to_string(), "CANARY-7f3a".to_string())]),
            ..Inputs::default()
        },
    ] {
        let (e, text) = errors(&[("main.toml", SECRET_VAR)], &inputs);
        assert!(!text.contains("CANARY"), "{text}");
        assert_eq!(e.diagnostics.len(), 1, "one problem, no cascade: {text}");
    }
    let (_, text) = errors(
        &[
            ("main.toml", SECRET_VAR),
            (
                "environments/staging.toml",
                "[variables]\npw = \"CANARY-7f3a\"\n",
            ),
        ],
        &env("staging"),
    );
    assert!(!text.contains("CANARY"), "{text}");
    assert!(text.contains("a secret value is never written"), "{text}");
}

#[test]
fn a_relative_file_source_is_relative_to_the_environment_file_that_names_it() {
    let d = load(
        &[
            ("main.toml", SECRET_VAR),
            (
                "environments/staging.toml",
                "[variables]\npw = { file = \"../secrets/pw.txt\" }\n",
            ),
        ],
        &env("staging"),
    );
    let r = &d.resources[&Address::parse("github.actions_secret.s").unwrap()];
    let sources = r.spec.secret_sources();
    let Some((_, provisioner_core::desired::values::SecretSource::File(path))) = sources.first()
    else {
        panic!("{sources:?}")
    };
    assert!(
        path.ends_with("environments/../secrets/pw.txt"),
        "{}",
        path.display()
    );
}

#[test]
fn nested_module_for_each_is_bounded_and_stops_at_once() {
    let keys: Vec<String> = (0..300).map(|i| format!("\"k{i}\"")).collect();
    let list = keys.join(", ");
    let started = std::time::Instant::now();
    let (e, text) = errors(
        &[
            (
                "main.toml",
                &format!("[module.a]\nsource = \"modules/a\"\nfor_each = [{list}]\n"),
            ),
            (
                "modules/a/main.toml",
                &format!("[module.b]\nsource = \"../b\"\nfor_each = [{list}]\n"),
            ),
            (
                "modules/b/main.toml",
                &format!("[module.c]\nsource = \"../c\"\nfor_each = [{list}]\n"),
            ),
            ("modules/c/main.toml", "[output.x]\nvalue = \"y\"\n"),
        ],
        &Inputs::default(),
    );
    assert!(
        text.contains("expands to more than 10000 resources and module instances"),
        "{text}"
    );
    assert_eq!(e.diagnostics.len(), 1, "{text}");
    // Not a timing assertion: a bound that only an unbounded expansion (27 million
    // instances) could reach.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn a_module_input_that_names_a_resource_is_checked_where_it_lands_not_against_the_variable() {
    load(
        &[
            (
                "modules/app/main.toml",
                "[variable.name]\ntype = \"string\"\npattern = \"[a-z]+\"\n\n[variable.n]\ntype = \"number\"\n\n[variable.pw]\ntype = \"secret\"\n\n\
                 [digitalocean.vpc.v]\nname = \"${var.name}\"\nregion = \"nyc3\"\n\n\
                 [github.actions_secret.s]\nrepository = \"o/r\"\nname = \"S\"\nvalue = \"${var.pw}\"\n",
            ),
            (
                "main.toml",
                "[digitalocean.vpc.base]\nname = \"base\"\nregion = \"nyc3\"\n\n[aws.iam_smtp_user.smtp]\nname = \"smtp\"\n\n\
                 [module.one]\nsource = \"modules/app\"\nname = \"${digitalocean.vpc.base.name}\"\nn = \"${digitalocean.vpc.base.id}\"\n\
                 pw = \"${aws.iam_smtp_user.smtp.smtp_password}\"\n",
            ),
        ],
        &Inputs::default(),
    );
}

#[test]
fn numbers_that_are_not_finite_and_escaped_module_text_are_handled() {
    let (_, text) = errors(
        &[(
            "main.toml",
            "[variable.n]\ntype = \"number\"\nmin = 1\nmax = 5\n",
        )],
        &Inputs {
            vars: vec![("n".into(), "nan".into())],
            ..Inputs::default()
        },
    );
    assert!(text.contains("must be a finite number"), "{text}");
    // `$${module.q.o}` is text, not a use of module q: no cycle.
    load(
        &[
            (
                "modules/m/main.toml",
                "[variable.x]\ntype = \"string\"\n\n[output.o]\nvalue = \"${var.x}\"\n",
            ),
            (
                "main.toml",
                "[module.p]\nsource = \"modules/m\"\nx = \"$${module.q.o}\"\n\n[module.q]\nsource = \"modules/m\"\nx = \"$${module.p.o}\"\n",
            ),
        ],
        &Inputs::default(),
    );
}

#[test]
fn an_output_that_shows_a_sensitive_module_output_must_be_sensitive() {
    let files = |sensitive: bool| {
        vec![
            (
                "modules/m/main.toml".to_string(),
                "[output.user]\nvalue = \"admin\"\nsensitive = true\n".to_string(),
            ),
            (
                "main.toml".to_string(),
                format!(
                    "[module.m]\nsource = \"modules/m\"\n\n[output.u]\nvalue = \"${{module.m.user}}\"\nsensitive = {sensitive}\n"
                ),
            ),
        ]
    };
    let f = files(false);
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (_, text) = errors(&f, &Inputs::default());
    assert!(
        text.contains("output `u` reads a module's sensitive output"),
        "{text}"
    );
    let f = files(true);
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert!(load(&f, &Inputs::default()).outputs["u"].sensitive);
}

#[test]
fn a_for_each_resource_named_whole_is_explained_or_means_all_its_instances() {
    let base = "[digitalocean.vpc.v]\nfor_each = [\"a\", \"b\"]\nname = \"v-${each.key}\"\nregion = \"nyc3\"\n\n";
    let (_, text) = errors(
        &[(
            "main.toml",
            &format!(
                "{base}[digitalocean.vpc.w]\nname = \"${{digitalocean.vpc.v.name}}\"\nregion = \"nyc3\"\n"
            ),
        )],
        &Inputs::default(),
    );
    assert!(
        text.contains(
            "`digitalocean.vpc.v` has `for_each`: a reference names one of its instances"
        ),
        "{text}"
    );
    let d = load(
        &[(
            "main.toml",
            &format!(
                "{base}[digitalocean.vpc.w]\nname = \"w\"\nregion = \"nyc3\"\ndepends_on = [\"digitalocean.vpc.v\"]\n"
            ),
        )],
        &Inputs::default(),
    );
    let w = &d.resources[&Address::parse("digitalocean.vpc.w").unwrap()];
    assert_eq!(w.depends_on.len(), 2, "{:?}", w.depends_on);
}

#[test]
fn an_unknown_environment_is_one_problem_not_thirty() {
    let files = [
        ("main.toml", VARS),
        (
            "environments/staging.toml",
            "[variables]\nprefix = \"stg\"\n",
        ),
        ("environments/README.md", "not an environment"),
    ];
    let (e, text) = errors(&files, &env("stagin"));
    assert_eq!(e.diagnostics.len(), 1, "{text}");
    // A README beside the environments is not one.
    load(&files, &env("staging"));
}

#[test]
fn outputs_that_publish_a_secret_source_or_name_nothing_in_a_module_are_refused() {
    let (_, text) = errors(
        &[(
            "main.toml",
            "[variable.pw]\ntype = \"secret\"\ndefault = { env = \"PW\" }\n\n[output.o]\nvalue = \"${var.pw}\"\n",
        )],
        &Inputs::default(),
    );
    assert!(
        text.contains("output `o` would publish a secret source"),
        "{text}"
    );
    // A module's output is checked whether the caller reads it or not, and named as the
    // module's.
    let (_, text) = errors(
        &[
            (
                "modules/m/main.toml",
                "[output.unused]\nvalue = \"${digitalocean.vpc.nothere.id}\"\n",
            ),
            ("main.toml", "[module.a]\nsource = \"modules/m\"\n"),
        ],
        &Inputs::default(),
    );
    assert!(text.contains("module.a.output.unused"), "{text}");
    assert!(
        text.contains("in module.a, called at main.toml:1:9"),
        "{text}"
    );
}

#[test]
fn a_move_to_an_instance_this_environment_does_not_have_does_nothing_here() {
    let files = [
        (
            "main.toml",
            "[variable.keys]\ntype = \"list(string)\"\n\n[digitalocean.vpc.v]\nfor_each = \"${var.keys}\"\nname = \"v-${each.key}\"\nregion = \"nyc3\"\n\n\
             [[moved]]\nfrom = \"digitalocean.vpc.legacy\"\nto = 'digitalocean.vpc.v[\"c\"]'\n",
        ),
        ("environments/staging.toml", "[variables]\nkeys = [\"a\"]\n"),
        (
            "environments/production.toml",
            "[variables]\nkeys = [\"a\", \"c\"]\n",
        ),
    ];
    assert!(load(&files, &env("staging")).moved.is_empty());
    assert_eq!(load(&files, &env("production")).moved.len(), 1);
    // A plain address that is nowhere is still a mistake worth naming.
    expect(
        &[(
            "main.toml",
            "[[moved]]\nfrom = \"digitalocean.vpc.a\"\nto = \"digitalocean.vpc.b\"\n[digitalocean.vpc.c]\nname = \"c\"\nregion = \"nyc3\"\n",
        )],
        &Inputs::default(),
        "main.toml:3:6",
        "is not in the desired state",
    );
}

#[test]
fn a_module_nested_too_deep_is_one_problem_per_call() {
    let mut files: Vec<(String, String)> = vec![(
        "main.toml".into(),
        "[module.m0]\nsource = \"modules/m1\"\nfor_each = [\"a\", \"b\", \"c\"]\n".into(),
    )];
    for i in 1..=10 {
        files.push((
            format!("modules/m{i}/main.toml"),
            format!(
                "[module.m{i}]\nsource = \"../m{}\"\nfor_each = [\"a\", \"b\", \"c\"]\n",
                i + 1
            ),
        ));
    }
    files.push((
        "modules/m11/main.toml".into(),
        "[output.x]\nvalue = \"y\"\n".into(),
    ));
    let f: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (e, text) = errors(&f, &Inputs::default());
    assert!(text.contains("nested deeper than 8 levels"), "{text}");
    assert_eq!(e.diagnostics.len(), 1, "{text}");
}

#[test]
fn terraform_words_that_are_not_here_are_named_as_such() {
    for (body, message) in [
        ("environment.nam", "the environment has only `name`"),
        ("local.x", "there is no `local` in this language"),
        ("count.index", "there is no `count` in this language"),
    ] {
        expect(
            &[(
                "main.toml",
                &format!("[digitalocean.vpc.v]\nname = \"${{{body}}}\"\nregion = \"nyc3\"\n"),
            )],
            &Inputs::default(),
            "main.toml:2:8",
            message,
        );
    }
}
