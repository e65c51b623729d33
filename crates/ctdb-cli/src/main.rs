//! `ctdb`: the CTDB control tool, printing what Samba 4.17's `ctdb` prints.
//!
//! `ctdb [OPTIONS] COMMAND [ARGS]`; see `ctdb --help`. Output formats live in
//! [`format`] as pure functions; [`commands`] asks the daemon and prints.

#![deny(unsafe_code)]

mod backup;
mod commands;
mod format;
mod keyvalue;
mod localtime;
mod messages;
mod options;
mod usage;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// What `ctdb version` prints.
pub const VERSION: &str = "4.17.12-ctdb-rs";

/// Writes to stdout, ignoring a closed pipe.
pub(crate) fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Writes bytes (record data need not be text) to stdout, ignoring a closed pipe.
pub(crate) fn out_bytes(b: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b);
    let _ = o.flush();
}

/// Writes to stderr.
pub(crate) fn err(s: &str) {
    let _ = std::io::stderr().write_all(s.as_bytes());
}

fn main() -> ExitCode {
    // `args()` panics on an argument that is not UTF-8; read such bytes lossily.
    let argv = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let opts = match options::parse(argv) {
        Ok(o) => o,
        Err(e) => {
            err(&format!("{e}\n"));
            return ExitCode::from(1);
        }
    };
    if opts.help {
        out(&usage::full());
        return ExitCode::SUCCESS;
    }
    if opts.brief_usage {
        out(&usage::brief());
        return ExitCode::SUCCESS;
    }
    let Some(command) = opts.args.first().cloned() else {
        out(&usage::full());
        return ExitCode::from(1);
    };
    if !usage::COMMANDS.iter().any(|(n, _, _)| *n == command)
        && !usage::HIDDEN.contains(&command.as_str())
    {
        err(&format!("Unknown command '{command}'\n"));
        return ExitCode::from(1);
    }
    let maxruntime = opts.maxruntime.filter(|&t| t > 0).unwrap_or_else(|| {
        std::env::var("CTDB_TIMEOUT")
            .ok()
            .and_then(|v| format::nodes::parse_c_ulong(&v))
            .unwrap_or(120)
    });
    let maxruntime = Duration::from_secs(maxruntime.max(120));

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            err(&format!("Failed to initialize tevent: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match tokio::time::timeout(maxruntime, commands::run(&command, &opts)).await {
            Ok(code) => code,
            Err(_) => {
                err("Maximum runtime exceeded - exiting\n");
                1
            }
        }
    });
    // As a C main() returning `ret`: -1 becomes 1, the rest is taken modulo 256.
    let code = if code == -1 { 1 } else { code };
    ExitCode::from((code & 0xff) as u8)
}
