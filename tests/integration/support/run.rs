//! A finished `provisioner` process as tests read it: exit code, stdout, stderr, JSON.

use std::process::Output;

use serde_json::Value;

/// The output of one run of the binary.
pub struct Run(pub Output);

impl Run {
    /// The exit code (-1 when killed by a signal).
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    /// Standard output, as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into()
    }

    /// Standard error, as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into()
    }

    /// Standard output as JSON (panics, with both streams, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.out())
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.out(), self.err()))
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.out(),
            self.err()
        );
        self
    }
}
