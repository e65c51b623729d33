//! Logging set-up with Samba's log locations and debug levels.
//!
//! Samba's levels map to tracing's: ERROR → `error`, WARNING → `warn`, NOTICE → `info`,
//! INFO → `debug`, DEBUG → `trace`. `RUST_LOG`, when set, overrides the level.
//!
//! A line names the spans it was logged in, outermost first, with their fields
//! (`db[42]: request{trace=00c0ffee00000001 reqid=7}: message`): the per-request spans
//! of transport and the components carry the request's trace id, so grepping the log
//! for `trace=<id>` finds every process's lines for one request.

use std::fmt;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::ConfigError;

/// Samba's debug levels (`DEBUG_ERR` ... `DEBUG_DEBUG`), as carried by GET_DEBUG/SET_DEBUG.
pub const ERROR: i32 = 0;
pub const WARNING: i32 = 1;
pub const NOTICE: i32 = 3;
pub const INFO: i32 = 5;
pub const DEBUG: i32 = 10;

/// Samba's name for each level 0..=10; the named levels come first for prefix matching.
const LEVELS: [(i32, &str); 11] = [
    (ERROR, "ERROR"),
    (WARNING, "WARNING"),
    (2, "WARNING"),
    (NOTICE, "NOTICE"),
    (4, "NOTICE"),
    (INFO, "INFO"),
    (6, "INFO"),
    (7, "INFO"),
    (8, "INFO"),
    (9, "INFO"),
    (DEBUG, "DEBUG"),
];

/// The name `ctdb getdebug` prints for a level (`UNKNOWN` outside 0..=10).
pub fn samba_level_name(level: i32) -> &'static str {
    LEVELS
        .iter()
        .find(|(n, _)| *n == level)
        .map_or("UNKNOWN", |(_, name)| name)
}

/// Parses a level as Samba does: a number 0..=10, or a level name or a prefix of one,
/// in any case (`NOTICE`, `notice`, `N`).
pub fn parse_samba_level(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return s.parse().ok().filter(|n| (0..=DEBUG).contains(n));
    }
    if s.is_empty() {
        return None;
    }
    LEVELS
        .iter()
        .find(|(_, name)| {
            name.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        })
        .map(|(n, _)| *n)
}

/// The tracing filter for a Samba level.
pub fn level_filter(level: i32) -> LevelFilter {
    match level {
        i32::MIN..=ERROR => LevelFilter::ERROR,
        1..=2 => LevelFilter::WARN,
        3..=4 => LevelFilter::INFO,
        5..=9 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Samba-style lines: `component[pid]: message` on stderr; with a timestamp in a file.
struct SambaFormat {
    component: String,
    timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for SambaFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.timestamps {
            SystemTime.format_time(&mut writer)?;
            write!(writer, " ")?;
        }
        write!(writer, "{}[{}]: ", self.component, std::process::id())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The installed subscriber's filter, which [`set_level`] replaces.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Sets this process's log level to Samba level `level` from now on (`ctdb setdebug`
/// reaches every component so); false when [`init`] installed no subscriber.
pub fn set_level(level: i32) -> bool {
    let Some(handle) = LEVEL.get() else {
        return false;
    };
    let filter = EnvFilter::default().add_directive(level_filter(level).into());
    handle.reload(filter).is_ok()
}

/// Installs the global tracing subscriber for `component` (`ctdbd`, `recoverd`, ...).
///
/// `location` is `stderr`, `file:PATH` (appended to; an empty path means stderr) or
/// `syslog[:METHOD]` (not supported: logs to stderr and says so). `level` is a Samba
/// level (see [`parse_samba_level`]). A second call keeps the first subscriber.
/// If the location or level cannot be used, logs to stderr at NOTICE and reports why;
/// see [`try_init`] to get the error instead.
pub fn init(component: &str, location: &str, level: &str) {
    if let Err(e) = try_init(component, location, level) {
        let _ = init_with(component, "stderr", "NOTICE", None);
        tracing::error!("logging set-up failed, logging to stderr: {e}");
    }
}

/// Makes a panic anywhere in this process end it (after the panic is logged), so that
/// ctdbd restarts the component. Without this a panic in a tokio task ends only that
/// task: a component whose packet handler or recovery loop died would stay up, deaf.
/// For the components ctdbd supervises; call after [`init`].
pub fn abort_on_panic(component: &'static str) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(
            component,
            "panic: {info}; aborting so that ctdbd restarts it"
        );
        report(info);
        std::process::abort();
    }));
}

/// Like [`init`], but a bad location, level or `RUST_LOG`, or a log file that cannot be
/// opened, is an error and nothing is installed.
pub fn try_init(component: &str, location: &str, level: &str) -> Result<(), ConfigError> {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    init_with(component, location, level, rust_log.as_deref())
}

fn init_with(
    component: &str,
    location: &str,
    level: &str,
    rust_log: Option<&str>,
) -> Result<(), ConfigError> {
    let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
        file: PathBuf::from("logging"),
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let samba_level =
        parse_samba_level(level).ok_or_else(|| invalid("log level", level, "invalid log level"))?;
    let filter = match rust_log {
        Some(spec) => {
            EnvFilter::try_new(spec).map_err(|e| invalid("RUST_LOG", spec, &e.to_string()))?
        }
        None => EnvFilter::default().add_directive(level_filter(samba_level).into()),
    };

    let mut note = None;
    let (writer, timestamps) = match location.split_once(':') {
        _ if location == "stderr" => (BoxMakeWriter::new(std::io::stderr), false),
        Some(("file", "")) => (BoxMakeWriter::new(std::io::stderr), false),
        Some(("file", path)) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ConfigError::Io {
                    path: path.into(),
                    source,
                })?;
            (BoxMakeWriter::new(Mutex::new(file)), true)
        }
        _ if location == "syslog" || location.starts_with("syslog:") => {
            note = Some(location);
            (BoxMakeWriter::new(std::io::stderr), false)
        }
        _ => return Err(invalid("location", location, "invalid log location")),
    };

    // Colour codes belong on a terminal, never in a log file.
    let ansi = !timestamps && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (filter, handle) = reload::Layer::new(filter);
    let format = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer)
        .event_format(SambaFormat {
            component: component.to_string(),
            timestamps,
        });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init()
        .is_ok();
    if installed {
        let _ = LEVEL.set(handle);
    }
    if let (true, Some(location)) = (installed, note) {
        tracing::warn!("log location {location} is not supported, logging to stderr");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names() {
        assert_eq!(samba_level_name(0), "ERROR");
        assert_eq!(samba_level_name(1), "WARNING");
        assert_eq!(samba_level_name(2), "WARNING");
        assert_eq!(samba_level_name(3), "NOTICE");
        assert_eq!(samba_level_name(5), "INFO");
        assert_eq!(samba_level_name(10), "DEBUG");
        assert_eq!(samba_level_name(11), "UNKNOWN");
        assert_eq!(samba_level_name(-1), "UNKNOWN");
    }

    #[test]
    fn parse_levels() {
        assert_eq!(parse_samba_level("ERROR"), Some(0));
        assert_eq!(parse_samba_level("warning"), Some(1));
        // ctdb setdebug NOTICE sends 3 on the wire (Samba 4.17 vectors).
        assert_eq!(parse_samba_level("NOTICE"), Some(3));
        assert_eq!(parse_samba_level("Info"), Some(5));
        assert_eq!(parse_samba_level("DEBUG"), Some(10));
        assert_eq!(parse_samba_level("N"), Some(3));
        assert_eq!(parse_samba_level("4"), Some(4));
        assert_eq!(parse_samba_level("10"), Some(10));
        assert_eq!(parse_samba_level("11"), None);
        assert_eq!(parse_samba_level("-1"), None);
        assert_eq!(parse_samba_level("NOTICEX"), None);
        assert_eq!(parse_samba_level(""), None);
        for n in 0..=10 {
            assert_eq!(
                parse_samba_level(samba_level_name(n)).map(level_filter),
                Some(level_filter(n))
            );
        }
    }

    #[test]
    fn tracing_levels() {
        assert_eq!(level_filter(ERROR), LevelFilter::ERROR);
        assert_eq!(level_filter(WARNING), LevelFilter::WARN);
        assert_eq!(level_filter(NOTICE), LevelFilter::INFO);
        assert_eq!(level_filter(INFO), LevelFilter::DEBUG);
        assert_eq!(level_filter(DEBUG), LevelFilter::TRACE);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let err = init_with("x", "stderr", "LOUD", None).expect_err("level");
        assert!(err.to_string().contains("log level = \"LOUD\""), "{err}");
        let err = init_with("x", "printer", "NOTICE", None).expect_err("location");
        assert!(err.to_string().contains("location = \"printer\""), "{err}");
    }

    /// The only test that installs the global subscriber.
    #[test]
    fn file_log_lines_carry_the_component() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log.ctdb");
        let location = format!("file:{}", path.display());
        init_with("ctdbd", &location, "NOTICE", None).expect("init");
        tracing::info!("notice line");
        tracing::debug!("info line");
        {
            let _outer = tracing::info_span!("request", trace = "00ab", reqid = 7).entered();
            let _inner = tracing::info_span!("call").entered();
            tracing::info!(key = 1, "in a span");
        }
        let text = std::fs::read_to_string(&path).expect("log file");
        let expected = format!("ctdbd[{}]: notice line", std::process::id());
        assert!(text.contains(&expected), "{text}");
        assert!(!text.contains("info line"), "{text}");
        // A line names its spans and their fields, outermost first.
        let expected = format!(
            "ctdbd[{}]: request{{trace=\"00ab\" reqid=7}}: call: in a span key=1",
            std::process::id()
        );
        assert!(text.contains(&expected), "{text}");
    }
}
