//! The `mdeploy` binary: parse, run, map errors to the documented exit codes.

mod cli;

use clap::Parser;

fn main() {
    return_large_blocks();
    let cli = cli::Cli::parse();
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
