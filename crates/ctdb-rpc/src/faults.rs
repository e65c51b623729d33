//! Named fault points (the `fail` crate), switched on in a running process.
//!
//! A component marks a step that may fail with `fail::fail_point!(name, |arg| ...)`,
//! whose closure calls [`fired`] and makes the step fail with the message it returns.
//! The points of each component are listed at the top of the module that holds them
//! and in DESIGN.md ("Fault points").
//!
//! A test switches a point on through the private control SET_FAILPOINT
//! (`ctdb_protocol::control::SetFailpoint`, 0x4352_0002), which transport routes to the
//! component it names; that component calls [`apply`]. `fail::FailScenario` reads the
//! `FAILPOINTS` variable only at start, and ctdbd starts the components itself, hence
//! the control. A process accepts it only when started with
//! `CTDB_RS_FAULT_INJECTION=1` (test clusters set it; ctdbd passes its environment on).
//!
//! Actions, in the `fail` crate's syntax: `return` makes the step fail with a clear
//! error (a failed control, or a failed recovery step); `return(abort)` kills the
//! process at once (`std::process::abort`), as a crash would, and ctdbd restarts it;
//! `1*return` fails once; `sleep(ms)`, `delay(ms)`, `pause`, `off` as the crate defines
//! them. (Transport's one point, `transport::cut`, is no `fail` point: its action
//! names the peers to cut off, see `ctdb_transport::peers`.) The crate's `panic` action is not a way to kill a component: a panic ends
//! only the tokio task that handles the packets (or runs the recovery loop), not the
//! process; use `return(abort)`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};

/// The environment variable (value `1`) that lets a process accept SET_FAILPOINT.
pub const ENABLE_ENV: &str = "CTDB_RS_FAULT_INJECTION";

/// The argument of `return(...)` that aborts the process instead of failing the step.
pub const ABORT: &str = "abort";

/// How often each point fired (its action was `return`) in this process.
static FIRED: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);

/// Whether this process was started with fault injection allowed.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(ENABLE_ENV).is_ok_and(|v| v == "1"))
}

/// `Ok` when this process accepts SET_FAILPOINT ([`enabled`]), else the reason to
/// refuse it (for a component whose points are not `fail` points, e.g. transport's cut).
pub fn check_enabled() -> Result<(), String> {
    check(enabled())
}

fn check(enabled: bool) -> Result<(), String> {
    if enabled {
        Ok(())
    } else {
        Err(format!(
            "fault injection is off: this process was not started with {ENABLE_ENV}=1"
        ))
    }
}

/// Called by fault point `name` whose action fired with argument `arg`: counts it,
/// aborts the process when `arg` is [`ABORT`], and otherwise returns the error message
/// the step must fail with.
pub fn fired(name: &str, arg: Option<String>) -> String {
    *crate::component::lock(&FIRED)
        .entry(name.to_string())
        .or_default() += 1;
    if arg.as_deref() == Some(ABORT) {
        tracing::error!(fault_point = name, "fault injected: aborting the process");
        std::process::abort();
    }
    tracing::warn!(fault_point = name, "fault injected: the step fails");
    format!("fault injected at {name}")
}

/// How many times `name` fired in this process.
pub fn fired_count(name: &str) -> u64 {
    crate::component::lock(&FIRED)
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Serves a SET_FAILPOINT for this process, whose fault points are `known`: reads
/// (`actions` None), removes (`Some("")`) or configures point `name`. Returns how many
/// times it fired before. Refused unless [`enabled`].
pub fn apply(known: &[&str], name: &str, actions: Option<&str>) -> Result<u64, String> {
    apply_if(enabled(), known, name, actions)
}

fn apply_if(
    enabled: bool,
    known: &[&str],
    name: &str,
    actions: Option<&str>,
) -> Result<u64, String> {
    check(enabled)?;
    if !known.contains(&name) {
        return Err(format!(
            "unknown fault point {name:?} (this process has: {})",
            known.join(", ")
        ));
    }
    let count = fired_count(name);
    match actions {
        None => {}
        Some("") => {
            fail::remove(name);
            tracing::info!(fault_point = name, "fault point removed");
        }
        Some(actions) => {
            fail::cfg(name, actions).map_err(|e| format!("fault point {name}: {e}"))?;
            tracing::info!(fault_point = name, actions, "fault point set");
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["test::a", "test::b"];

    fn step() -> Result<(), String> {
        fail::fail_point!("test::a", |arg| Err(fired("test::a", arg)));
        Ok(())
    }

    #[test]
    fn refused_when_off_and_checked_when_on() {
        let off = apply_if(false, KNOWN, "test::a", Some("return")).unwrap_err();
        assert!(off.contains(ENABLE_ENV), "{off}");
        let unknown = apply_if(true, KNOWN, "test::zz", Some("return")).unwrap_err();
        assert!(unknown.contains("unknown fault point"), "{unknown}");
        let bad = apply_if(true, KNOWN, "test::b", Some("no-such-action")).unwrap_err();
        assert!(bad.contains("test::b"), "{bad}");
    }

    #[test]
    fn a_point_fails_its_step_and_counts_until_removed() {
        assert_eq!(step(), Ok(()));
        assert_eq!(apply_if(true, KNOWN, "test::a", Some("return")), Ok(0));
        assert_eq!(step(), Err("fault injected at test::a".to_string()));
        assert_eq!(step(), Err("fault injected at test::a".to_string()));
        assert_eq!(apply_if(true, KNOWN, "test::a", None), Ok(2));
        assert_eq!(apply_if(true, KNOWN, "test::a", Some("")), Ok(2));
        assert_eq!(step(), Ok(()));
        assert_eq!(apply_if(true, KNOWN, "test::a", Some("1*return")), Ok(2));
        assert!(step().is_err());
        assert_eq!(step(), Ok(()));
        assert_eq!(fired_count("test::a"), 3);
        fail::remove("test::a");
    }
}
