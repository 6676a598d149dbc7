//! The `provisioner` binary: parse arguments, hand over to the library.

fn main() -> std::process::ExitCode {
    provisioner::cli::main()
}
