//! The `mdeploy` binary: parse, run, map errors to the documented exit codes.

mod cli;

use clap::Parser;

fn main() {
    return_large_blocks();
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Serve(_)) {
        quiet_on_closed_pipe();
    }
    match cli::run(cli) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// Makes glibc serve every block of 1 MiB or more by its own mapping, returned to the system
/// when freed. By default glibc raises this threshold each time such a block is freed (up to
/// 32 MiB), after which weight-sized blocks come from the heap; evaluation loads and drops one
/// piece of a model after another, and in the heap their differently sized blocks fragment
/// it, so peak memory grew with every piece (the 106 MB benchmark MLP's int8 accuracy report:
/// 216 MB with the default, 148 MB with this).
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Restores the default action of SIGPIPE (Rust ignores it), so that `mdeploy inspect … | head`
/// ends quietly when `head` closes the pipe instead of panicking in `println!`, as other Unix
/// tools do. Not for `serve`: a client closing its connection must be an error on that
/// connection, never the end of the server.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: signal only sets the disposition of SIGPIPE; no thread has started yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
