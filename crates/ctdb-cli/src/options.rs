//! Command line options, parsed as Samba's popt table parses them:
//! `ctdb [OPTIONS] COMMAND [ARGS]`, options allowed anywhere before `--`.

/// The options Samba 4.17's `ctdb` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-n PNN`: the node to send the command to (`None`: the local node).
    pub node: Option<u32>,
    /// `-t SECONDS`: how long to wait for each control (default 10).
    pub timelimit: u64,
    /// `-X` or `-Y`: machine-readable output.
    pub machine: bool,
    /// `-x CHAR`: the separator of machine-readable output (default `|`).
    pub sep: String,
    pub verbose: bool,
    /// `-d LEVEL`: accepted for compatibility; the tool logs nothing else.
    pub debug: Option<String>,
    /// `-T SECONDS`: give up after this long (default and minimum 120, or
    /// `CTDB_TIMEOUT`).
    pub maxruntime: Option<u64>,
    pub help: bool,
    pub brief_usage: bool,
    /// The command and its arguments.
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            node: None,
            timelimit: 10,
            machine: false,
            sep: "|".to_string(),
            verbose: false,
            debug: None,
            maxruntime: None,
            help: false,
            brief_usage: false,
            args: Vec::new(),
        }
    }
}

impl Options {
    /// The separator when machine-readable output is on.
    pub fn machine_sep(&self) -> Option<&str> {
        self.machine.then_some(self.sep.as_str())
    }
}

/// popt's words for what went wrong; printed as `Invalid option OPT: WHY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub option: String,
    pub why: &'static str,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Invalid option {}: {}", self.option, self.why)
    }
}

/// A C `strtol(s, &end, 0)` over the whole string.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = crate::format::nodes::parse_c_ulong(digits)? as i64;
    Some(if neg { -v } else { v })
}

fn int_value(value: &str) -> Result<i64, OptionError> {
    parse_int(value).ok_or(OptionError {
        option: value.to_string(),
        why: "invalid numeric value",
    })
}

#[derive(Clone, Copy)]
enum Takes {
    Flag,
    Value,
}

fn short_kind(c: char) -> Option<Takes> {
    match c {
        'X' | 'Y' | 'v' | '?' => Some(Takes::Flag),
        'n' | 't' | 'x' | 'd' | 'T' => Some(Takes::Value),
        _ => None,
    }
}

fn long_to_short(name: &str) -> Option<char> {
    Some(match name {
        "node" => 'n',
        "timelimit" => 't',
        "separator" => 'x',
        "debug" => 'd',
        "maxruntime" => 'T',
        "verbose" => 'v',
        "help" => '?',
        _ => return None,
    })
}

fn apply(o: &mut Options, c: char, value: Option<&str>) -> Result<(), OptionError> {
    let v = value.unwrap_or_default();
    match c {
        'X' | 'Y' => o.machine = true,
        'v' => o.verbose = true,
        '?' => o.help = true,
        'n' => {
            let n = int_value(v)?;
            o.node = if n < 0 { None } else { Some(n as u32) };
        }
        't' => o.timelimit = int_value(v)?.max(0) as u64,
        'T' => o.maxruntime = Some(int_value(v)?.max(0) as u64),
        'x' => o.sep = v.to_string(),
        'd' => o.debug = Some(v.to_string()),
        _ => unreachable!("only known options are applied"),
    }
    Ok(())
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(argv: I) -> Result<Options, OptionError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
    let mut o = Options::default();
    let mut i = 0;
    let missing = |opt: &str| OptionError {
        option: opt.to_string(),
        why: "missing argument",
    };
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            o.args.extend(argv[i..].iter().cloned());
            break;
        }
        if a == "--usage" {
            o.brief_usage = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let c = long_to_short(name).ok_or_else(|| OptionError {
                option: a.clone(),
                why: "unknown option",
            })?;
            let value = match short_kind(c) {
                Some(Takes::Value) => match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = argv.get(i).cloned().ok_or_else(|| missing(a))?;
                        i += 1;
                        Some(v)
                    }
                },
                _ => None,
            };
            apply(&mut o, c, value.as_deref())?;
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let shown = format!("-{c}");
                match short_kind(c) {
                    None => {
                        return Err(OptionError {
                            option: shown,
                            why: "unknown option",
                        })
                    }
                    Some(Takes::Flag) => apply(&mut o, c, None)?,
                    Some(Takes::Value) => {
                        let rest: String = chars[j + 1..].iter().collect();
                        let rest = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                        let value = if rest.is_empty() {
                            let v = argv.get(i).cloned().ok_or_else(|| missing(&shown))?;
                            i += 1;
                            v
                        } else {
                            rest
                        };
                        apply(&mut o, c, Some(&value))?;
                        break;
                    }
                }
                j += 1;
            }
            continue;
        }
        o.args.push(a.clone());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samba_placements() {
        let o = parse(["-n", "2", "statistics"]).unwrap();
        assert_eq!(o.node, Some(2));
        assert_eq!(o.args, ["statistics"]);
        let o = parse(["-X", "status"]).unwrap();
        assert!(o.machine);
        assert_eq!(o.machine_sep(), Some("|"));
        let o = parse(["-Y", "-x", ":", "getdbmap"]).unwrap();
        assert_eq!(o.machine_sep(), Some(":"));
        let o = parse(["status", "-X"]).unwrap();
        assert!(o.machine);
        let o = parse(["-n1", "-t", "3", "getvar", "RecoverInterval"]).unwrap();
        assert_eq!((o.node, o.timelimit), (Some(1), 3));
        assert_eq!(o.args, ["getvar", "RecoverInterval"]);
        let o = parse(["--node=0", "--timelimit", "5", "-Xv", "ping"]).unwrap();
        assert_eq!(
            (o.node, o.timelimit, o.machine, o.verbose),
            (Some(0), 5, true, true)
        );
        let o = parse(["ping"]).unwrap();
        assert_eq!(
            o,
            Options {
                args: vec!["ping".into()],
                ..Options::default()
            }
        );
        let o = parse(["--", "setvar", "X", "-1"]).unwrap();
        assert_eq!(o.args, ["setvar", "X", "-1"]);
    }

    #[test]
    fn errors_read_like_popt() {
        assert_eq!(
            parse(["-n", "all", "ping"]).unwrap_err().to_string(),
            "Invalid option all: invalid numeric value"
        );
        assert_eq!(
            parse(["-q", "ping"]).unwrap_err().to_string(),
            "Invalid option -q: unknown option"
        );
        assert_eq!(
            parse(["ping", "-n"]).unwrap_err().to_string(),
            "Invalid option -n: missing argument"
        );
        assert_eq!(
            parse(["--bogus"]).unwrap_err().to_string(),
            "Invalid option --bogus: unknown option"
        );
    }
}
