//! `hotline-conformance`: the interop conformance runner (`run`) and the test-vector checker
//! (`vectors`). The command line itself is `hotline_conformance::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hotline_conformance::cli::main()
}
