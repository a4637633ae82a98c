//! The `mdeploy` binary: parse, run, map errors to the documented exit codes.

use clap::Parser;

fn main() {
    let cli = mdeploy::cli::Cli::parse();
    match mdeploy::cli::run(cli) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
