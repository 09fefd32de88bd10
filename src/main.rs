//! container-loader: loads the container images a root filesystem ships into docker or
//! podman at boot. See README.md; `container-loader --help` for the command line.
#![forbid(unsafe_code)]

mod archive;
mod cli;
mod decode;
mod engine;
mod list;
mod load;
mod lock;
mod log;
mod notify;
mod reference;
mod status;
mod units;

use std::process::ExitCode;

use cli::Command;
use load::Exit;

fn main() -> ExitCode {
    let command = cli::parse(std::env::args_os().skip(1), |k| std::env::var(k).ok());
    let exit = match command {
        Err(e) => {
            log::Log::from_env(0).error(e);
            Exit::Usage
        }
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            Exit::Done
        }
        Ok(Command::Version) => {
            println!("{}", cli::version());
            Exit::Done
        }
        Ok(Command::Load(o)) => load::run(&o, &log::Log::from_env(o.verbosity)),
        Ok(Command::Status { options: o, json }) => {
            status::run(&o, json, &log::Log::from_env(o.verbosity))
        }
    };
    ExitCode::from(exit as u8)
}
