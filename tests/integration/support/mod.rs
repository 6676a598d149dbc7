//! Shared test helpers.

#![allow(dead_code)]

pub mod aws_model;
pub mod http;
pub mod kube_private;
pub mod moto;
pub mod prism;
pub mod run;

/// Writes `files` (`(relative path, text)`) into a fresh folder, removed when dropped.
pub fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// The environment a test runs a desired-state folder in: `production` for one with
/// environments (the worked example), none for the others.
pub fn environment_of(dir: &std::path::Path) -> Option<&'static str> {
    dir.join("environments").is_dir().then_some("production")
}

/// [`environment_of`] as load inputs.
pub fn inputs_of(dir: &std::path::Path) -> provisioner::desired::Inputs {
    provisioner::desired::Inputs {
        environment: environment_of(dir).map(str::to_string),
        ..Default::default()
    }
}
