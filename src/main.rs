//! The `container-loader` binary: parse, run, exit. See README.md and `--help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use container_loader::cli::{self, Command};
use container_loader::commands::{inspect, load, scan, status};
use container_loader::report::exit::Exit;
use container_loader::report::log::Log;
use container_loader::report::stdout::Stdout;

/// dlmalloc in place of musl's malloc, whose allocator maps and unmaps a group of pages for a
/// few small allocations at a time: about a quarter of a no-op run's CPU went to mmap, munmap
/// (each a TLB flush on every core the process ran on) and their page faults
/// (docs/performance.md). dlmalloc keeps what was freed for the next allocation.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    let command = cli::parse(std::env::args_os().skip(1), |k| std::env::var(k).ok());
    let exit = match command {
        Err(e) => {
            Log::from_env(0).error(e);
            Exit::Usage
        }
        Ok(Command::Help(command)) => {
            let mut out = Stdout::default();
            out.write(&cli::help(command));
            out.finish(Exit::Done, &Log::from_env(0))
        }
        Ok(Command::Version) => {
            let mut out = Stdout::default();
            out.write(&format!("{}\n", cli::version()));
            out.finish(Exit::Done, &Log::from_env(0))
        }
        Ok(Command::Load(o)) => load::run(&o, &Log::from_env(o.verbosity)),
        Ok(Command::Status(o)) => status::run(&o, o.json, &Log::from_env(o.verbosity)),
        Ok(Command::Inspect(o)) => {
            inspect::run(&o.archives, o.json, o.memory_limit, &Log::from_env(0))
        }
        Ok(Command::Scan(s)) => scan::run(&s, &Log::from_env(s.verbosity)),
        #[cfg(feature = "pack")]
        Ok(Command::Pack(p)) => {
            container_loader::commands::pack::run(&p, &Log::from_env(p.verbosity))
        }
    };
    ExitCode::from(exit as u8)
}
