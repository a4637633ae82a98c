//! `mdeploy man --out-dir DIR` (hidden; `cargo xtask man` runs it): the man pages, generated
//! from the parser's own definition. It lives in the binary rather than in xtask because xtask
//! depending on this crate would build tract a second time with xtask's feature set.

use super::Cli;
use clap::{Args, CommandFactory};
use mdeploy::error::{Error, Result};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(about = "Write the man pages: mdeploy.1 and one mdeploy-SUBCOMMAND.1 per subcommand")]
pub struct ManArgs {
    /// The folder to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

pub fn run(a: ManArgs) -> Result<()> {
    let failed = |e: std::io::Error| Error::Failed(format!("{}: {e}", a.out_dir.display()));
    std::fs::create_dir_all(&a.out_dir).map_err(failed)?;
    clap_mangen::generate_to(Cli::command(), &a.out_dir).map_err(failed)
}
