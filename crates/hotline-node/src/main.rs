//! `hotlined`: the hotline node daemon. The command line itself is `hotline_node::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hotline_node::cli::main()
}
