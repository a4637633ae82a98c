//! `mdeploy completions SHELL`: the shell's completion script on stdout, generated from the
//! same clap definition as the parser, so it never drifts from the real flags.

use super::Cli;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use mdeploy::error::{Error, Result};
use std::io::Write;

#[derive(Args, Debug)]
#[command(
    about = "Print a shell completion script",
    after_help = "Examples:\n  mdeploy completions bash > ~/.local/share/bash-completion/completions/mdeploy\n  \
mdeploy completions zsh > ~/.zfunc/_mdeploy\n  mdeploy completions fish > ~/.config/fish/completions/mdeploy.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(a: CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        a.shell,
        &mut visible(Cli::command()),
        "mdeploy",
        &mut script,
    );
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Error::Failed(format!("writing the completion script: {e}")))
}

/// `cmd` without its hidden subcommands (`man`, for `cargo xtask man`): clap_complete would
/// offer them too, and clap cannot remove a subcommand, so the top level is rebuilt.
fn visible(cmd: clap::Command) -> clap::Command {
    let subcommands = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    clap::Command::new("mdeploy")
        .version(super::VERSION)
        .args(cmd.get_arguments().cloned())
        .subcommands(subcommands.collect::<Vec<_>>())
}
