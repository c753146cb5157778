//! The `hotline` command exactly as built (`hotline_client::cli`), under a name of this crate,
//! so the end-to-end tests here get its path from Cargo (`CARGO_BIN_EXE_*` names only a
//! package's own binaries).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hotline_client::cli::main()
}
