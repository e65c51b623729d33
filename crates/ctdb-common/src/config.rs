//! One configuration for all components.
//!
//! Sources, in increasing precedence: built-in defaults, `$CTDB_BASE/ctdb.conf` (Samba's
//! INI format and key names), then `CTDB_*` environment variables (see [`SETTINGS`]).
//! The node list comes from `$CTDB_BASE/nodes` and the public addresses from
//! `$CTDB_BASE/public_addresses`, both in Samba's formats.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use config::Source as _;

use crate::logging;
use crate::nodes::{self, NodeEntry, PublicAddress};

/// The client socket when `CTDB_SOCKET` does not name one: where Samba's `ctdb` tool
/// and smbd look for it (`/var/run/ctdb/ctdbd.socket`; `/var/run` is `/run`), in a
/// directory only root can write to. The seed's `CTDB_PATH`, `/tmp/ctdb.socket`, is
/// used only where asked for (`scripts/node.sh`, tests): in `/tmp` another user could
/// bind it first while the node is down.
pub const DEFAULT_SOCKET: &str = "/run/ctdb/ctdbd.socket";
/// Samba's node-to-node TCP port (`CTDB_PORT`).
pub const DEFAULT_PORT: u16 = 4379;
/// Samba's places, used when `CTDB_BASE` is not set: the configuration directory
/// (`ctdb.conf`, `nodes`, `public_addresses`, `events/`), ...
pub const SYSTEM_BASE: &str = "/etc/ctdb";
/// ... the run directory (component sockets, pid files), ...
pub const SYSTEM_RUN_DIR: &str = "/run/ctdb";
/// ... and the databases (`volatile/`, `persistent/`, `state/`).
pub const SYSTEM_DB_DIR: &str = "/var/lib/ctdb";
/// What [`ConfigError::Invalid`] names as the file for environment variables.
pub const ENVIRONMENT: &str = "environment";

/// A bad configuration: each error names the file, the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that cannot be used. `file` is the configuration file, or
    /// [`ENVIRONMENT`] for a variable; `key` is `[section] key` or the variable's name.
    #[error("{}: {key} = \"{value}\": {reason}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "no address in the nodes list can be bound locally \
         (set [cluster] node address or CTDB_NODE_ADDRESS)"
    )]
    NoLocalNode,
    #[error("node address {addr} is not an active node in {}", nodes_file.display())]
    UnknownNodeAddress { addr: IpAddr, nodes_file: PathBuf },
    #[error("unsafe configuration directory: {0}")]
    Unsafe(#[from] crate::secure::UnsafePath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `stderr`, `file:PATH` or `syslog[:METHOD]`.
    pub location: String,
    /// A Samba level name (`NOTICE`, ...) or number; see [`logging::parse_samba_level`].
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node_address: Option<IpAddr>,
    pub recovery_lock: Option<String>,
    pub port: u16,
    /// ctdb-rs only: mutual TLS on the node-to-node port when all three are set
    /// (`[cluster] tls certificate`, `tls key`, `tls ca`: PEM files). Each node
    /// presents its certificate, which must be signed by the CA and name the node's
    /// address of the nodes file (an IP address subjectAltName).
    pub tls: Option<TlsConfig>,
}

/// The PEM files of a node's TLS identity and of the CA its peers must be signed by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub volatile_dir: PathBuf,
    pub persistent_dir: PathBuf,
    pub state_dir: PathBuf,
    /// ctdb-rs only: run the database component inside transport's process. Local
    /// calls then skip a process hop; the two restart together.
    pub in_transport: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConfig {
    pub events_dir: PathBuf,
    pub debug_script: Option<String>,
    pub monitor_interval_secs: u64,
    pub script_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub base: Option<PathBuf>,
    /// The client socket.
    pub socket: PathBuf,
    pub run_dir: PathBuf,
    pub logging: LoggingConfig,
    pub cluster: ClusterConfig,
    pub database: DatabaseConfig,
    pub event: EventConfig,
    pub failover: FailoverConfig,
    /// Where transport serves Prometheus metrics (`[metrics] address`, e.g.
    /// `127.0.0.1:9479`); none by default.
    pub metrics_address: Option<std::net::SocketAddr>,
    pub nodes: Vec<NodeEntry>,
    pub public_addresses: Vec<PublicAddress>,
}

type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// One setting: its `ctdb.conf` section and key (if any), the environment variables that
/// override it (the first one set wins), and how a value is checked and stored.
struct Setting {
    ini: Option<(&'static str, &'static str)>,
    env: &'static [&'static str],
    apply: Apply,
}

/// Every setting, with its `ctdb.conf` key and environment variables.
#[rustfmt::skip]
const SETTINGS: &[Setting] = &[
    Setting { ini: None, env: &["CTDB_SOCKET"], apply: |c, v| { c.socket = path(v)?; Ok(()) } },
    Setting { ini: None, env: &["CTDB_RUNDIR"], apply: |c, v| { c.run_dir = path(v)?; Ok(()) } },
    Setting { ini: Some(("logging", "location")), env: &["CTDB_LOGGING_LOCATION"], apply: |c, v| { c.logging.location = location(v)?; Ok(()) } },
    Setting { ini: Some(("logging", "log level")), env: &["CTDB_LOG_LEVEL", "CTDB_DEBUGLEVEL"], apply: |c, v| { c.logging.level = level(v)?; Ok(()) } },
    Setting { ini: Some(("cluster", "node address")), env: &["CTDB_NODE_ADDRESS"], apply: |c, v| { c.cluster.node_address = Some(ip(v)?); Ok(()) } },
    Setting { ini: Some(("cluster", "recovery lock")), env: &["CTDB_RECOVERY_LOCK"], apply: |c, v| { c.cluster.recovery_lock = optional(v); Ok(()) } },
    // Samba 4.18 renamed "recovery lock" to "cluster lock"; accept both.
    Setting { ini: Some(("cluster", "cluster lock")), env: &[], apply: |c, v| { c.cluster.recovery_lock = optional(v); Ok(()) } },
    Setting { ini: Some(("cluster", "tls certificate")), env: &["CTDB_RS_TLS_CERTIFICATE"], apply: |c, v| { c.tls_part(v, |t, p| t.certificate = p) } },
    Setting { ini: Some(("cluster", "tls key")), env: &["CTDB_RS_TLS_KEY"], apply: |c, v| { c.tls_part(v, |t, p| t.key = p) } },
    Setting { ini: Some(("cluster", "tls ca")), env: &["CTDB_RS_TLS_CA"], apply: |c, v| { c.tls_part(v, |t, p| t.ca = p) } },
    Setting { ini: None, env: &["CTDB_PORT"], apply: |c, v| { c.cluster.port = port(v)?; Ok(()) } },
    Setting { ini: Some(("database", "volatile database directory")), env: &["CTDB_VOLATILE_DB_DIR"], apply: |c, v| { c.database.volatile_dir = path(v)?; Ok(()) } },
    Setting { ini: Some(("database", "persistent database directory")), env: &["CTDB_PERSISTENT_DB_DIR"], apply: |c, v| { c.database.persistent_dir = path(v)?; Ok(()) } },
    Setting { ini: Some(("database", "state database directory")), env: &["CTDB_STATE_DB_DIR"], apply: |c, v| { c.database.state_dir = path(v)?; Ok(()) } },
    Setting { ini: Some(("database", "in transport process")), env: &["CTDB_DB_IN_TRANSPORT"], apply: |c, v| { c.database.in_transport = boolean(v)?; Ok(()) } },
    Setting { ini: None, env: &["CTDB_EVENTS_DIR"], apply: |c, v| { c.event.events_dir = path(v)?; Ok(()) } },
    Setting { ini: Some(("event", "debug script")), env: &[], apply: |c, v| { c.event.debug_script = optional(v); Ok(()) } },
    Setting { ini: None, env: &["CTDB_MONITOR_INTERVAL"], apply: |c, v| { c.event.monitor_interval_secs = secs(v)?; Ok(()) } },
    Setting { ini: None, env: &["CTDB_SCRIPT_TIMEOUT"], apply: |c, v| { c.event.script_timeout_secs = secs(v)?; Ok(()) } },
    Setting { ini: Some(("failover", "disabled")), env: &["CTDB_FAILOVER_DISABLED"], apply: |c, v| { c.failover.disabled = boolean(v)?; Ok(()) } },
    Setting { ini: Some(("metrics", "address")), env: &["CTDB_RS_METRICS_ADDRESS"], apply: |c, v| { c.metrics_address = if v.is_empty() { None } else { Some(v.parse().map_err(|e| format!("not an address:port: {e}"))?) }; Ok(()) } },
];

fn path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("empty path".into());
    }
    Ok(PathBuf::from(v))
}

fn optional(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn ip(v: &str) -> Result<IpAddr, String> {
    v.parse().map_err(|_| "invalid IP address".to_string())
}

fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("invalid port (1-65535)".into()),
    }
}

fn secs(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(s) if s != 0 => Ok(s),
        _ => Err("invalid number of seconds (a positive integer)".into()),
    }
}

/// Samba's booleans.
fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("invalid boolean (true/false, yes/no, on/off, 1/0)".into()),
    }
}

fn level(v: &str) -> Result<String, String> {
    logging::parse_samba_level(v)
        .map(|_| v.to_string())
        .ok_or_else(|| "invalid log level (ERROR, WARNING, NOTICE, INFO, DEBUG or 0-10)".into())
}

fn location(v: &str) -> Result<String, String> {
    if v == "stderr" || v.starts_with("file:") || v == "syslog" || v.starts_with("syslog:") {
        Ok(v.to_string())
    } else {
        Err("invalid log location (stderr, file:PATH or syslog[:METHOD])".into())
    }
}

/// Samba ignores case and repeated blanks in section and key names.
fn normalise(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

impl Config {
    /// Loads the configuration using the process environment.
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(&std::env::vars().collect())
    }

    /// Loads the configuration using `env` instead of the process environment.
    pub fn load_from(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let base = env
            .get("CTDB_BASE")
            .filter(|b| !b.is_empty())
            .map(PathBuf::from);
        let mut config = Config::defaults(base);
        // What the configuration directory holds decides where the node writes and
        // what it runs: it must be root's or the node's user's, and closed to others.
        if let Some(base) = config.base.as_ref().filter(|b| b.exists()) {
            crate::secure::check_dir(base, crate::secure::Owners::RootOrDaemon)?;
        }
        if let Some(file) = config.base_file("ctdb.conf").filter(|f| f.exists()) {
            let text = read(&file)?;
            config.apply_ini(&file, &text)?;
        }
        config.apply_env(env)?;
        if let Some(tls) = &config.cluster.tls {
            let parts = [
                ("tls certificate", &tls.certificate),
                ("tls key", &tls.key),
                ("tls ca", &tls.ca),
            ];
            if let Some((key, _)) = parts.iter().find(|(_, p)| p.as_os_str().is_empty()) {
                return Err(ConfigError::Invalid {
                    file: config.base_file("ctdb.conf").unwrap_or_default(),
                    key: format!("[cluster] {key}"),
                    value: String::new(),
                    reason: "missing: tls certificate, tls key and tls ca go together".into(),
                });
            }
        }
        config.nodes = config.read_nodes()?;
        if let Some(file) = config.base_file("public_addresses").filter(|f| f.exists()) {
            config.public_addresses = nodes::parse_public_addresses(&read(&file)?, &file)?;
        }
        Ok(config)
    }

    /// The built-in defaults for a given `CTDB_BASE`: everything under it (`run/`,
    /// `db/`, `events/`), or without it Samba's places ([`SYSTEM_BASE`],
    /// [`SYSTEM_RUN_DIR`], [`SYSTEM_DB_DIR`]).
    fn defaults(base: Option<PathBuf>) -> Config {
        let (base, run_dir, db) = match base {
            Some(b) => (b.clone(), b.join("run"), b.join("db")),
            None => (
                PathBuf::from(SYSTEM_BASE),
                PathBuf::from(SYSTEM_RUN_DIR),
                PathBuf::from(SYSTEM_DB_DIR),
            ),
        };
        Config {
            socket: PathBuf::from(DEFAULT_SOCKET),
            run_dir,
            logging: LoggingConfig {
                location: "stderr".into(),
                level: "NOTICE".into(),
            },
            cluster: ClusterConfig {
                node_address: None,
                recovery_lock: None,
                port: DEFAULT_PORT,
                tls: None,
            },
            database: DatabaseConfig {
                volatile_dir: db.join("volatile"),
                persistent_dir: db.join("persistent"),
                state_dir: db.join("state"),
                in_transport: false,
            },
            event: EventConfig {
                events_dir: base.join("events"),
                debug_script: None,
                monitor_interval_secs: 15,
                script_timeout_secs: 30,
            },
            failover: FailoverConfig { disabled: false },
            metrics_address: None,
            nodes: Vec::new(),
            public_addresses: Vec::new(),
            base: Some(base),
        }
    }

    /// Sets one of the TLS paths (see [`ClusterConfig::tls`]).
    fn tls_part(&mut self, v: &str, set: fn(&mut TlsConfig, PathBuf)) -> Result<(), String> {
        set(
            self.cluster.tls.get_or_insert_with(Default::default),
            path(v)?,
        );
        Ok(())
    }

    /// `$CTDB_BASE/<name>`, when the configuration has a CTDB_BASE.
    pub fn base_file(&self, name: &str) -> Option<PathBuf> {
        self.base.as_ref().map(|b| b.join(name))
    }

    /// `$CTDB_BASE/public_addresses`, which `ctdb reloadips` has a node read again.
    pub fn public_addresses_file(&self) -> Option<PathBuf> {
        self.base_file("public_addresses")
    }

    /// Applies a `ctdb.conf`. Keys this implementation does not use (`transport`,
    /// `leader capability`, `[legacy]` options, ...) are accepted and ignored.
    fn apply_ini(&mut self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let parse_error = |e: config::ConfigError| ConfigError::Parse {
            path: file.to_path_buf(),
            message: e.to_string(),
        };
        // Samba's files indent comments inside sections; the INI parser would take such
        // a line as part of the next key, so comments go before it sees the text.
        let text: String = text
            .lines()
            .filter(|l| !matches!(l.trim_start().chars().next(), Some('#' | ';')))
            .map(|l| format!("{l}\n"))
            .collect();
        let sections = config::File::from_str(&text, config::FileFormat::Ini)
            .collect()
            .map_err(parse_error)?;
        for (section, table) in sections {
            let Ok(table) = table.into_table() else {
                continue; // a key before any section: not part of Samba's format
            };
            let section = normalise(&section);
            for (key, value) in table {
                let key = normalise(&key);
                let value = value.into_string().map_err(parse_error)?;
                let setting = SETTINGS
                    .iter()
                    .find(|s| s.ini == Some((section.as_str(), key.as_str())));
                if let Some(setting) = setting {
                    (setting.apply)(self, value.trim()).map_err(|reason| ConfigError::Invalid {
                        file: file.to_path_buf(),
                        key: format!("[{section}] {key}"),
                        value: value.clone(),
                        reason,
                    })?;
                }
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            let Some((name, value)) = setting
                .env
                .iter()
                .find_map(|name| env.get(*name).map(|v| (name, v)))
            else {
                continue;
            };
            (setting.apply)(self, value).map_err(|reason| ConfigError::Invalid {
                file: PathBuf::from(ENVIRONMENT),
                key: name.to_string(),
                value: value.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// This node's pnn: the node whose address is `cluster.node_address`, or without
    /// one, the first active node whose address can be bound locally.
    pub fn pnn(&self) -> Result<u32, ConfigError> {
        self.local_node().map(|n| n.pnn)
    }

    /// The nodes file as it is now on disk, names resolved (a single node at the
    /// configured address when there is no file). Read at start, and again by
    /// RELOAD_NODES_FILE and GET_NODES_FILE (`ctdb reloadnodes`).
    pub fn read_nodes(&self) -> Result<Vec<NodeEntry>, ConfigError> {
        let mut list = match self.base_file("nodes").filter(|f| f.exists()) {
            Some(file) => nodes::parse_nodes(&read(&file)?, &file)?,
            None => vec![NodeEntry {
                pnn: 0,
                name: None,
                addr: self
                    .cluster
                    .node_address
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                deleted: false,
            }],
        };
        nodes::resolve_names(&mut list);
        self.claim_own_name(&mut list);
        Ok(list)
    }

    /// A node given by name whose name does not resolve to this node's address (yet:
    /// a pod's own DNS record may appear only once it runs) is this node when the
    /// name's first label is this host's name (`ctdb-0` of `ctdb-0.ctdb.ns.svc...`):
    /// it takes the configured node address.
    fn claim_own_name(&self, nodes: &mut [NodeEntry]) {
        let Some(addr) = self.cluster.node_address else {
            return;
        };
        if nodes.iter().any(|n| !n.deleted && n.addr == addr) {
            return;
        }
        let Ok(host) = nix::unistd::gethostname() else {
            return;
        };
        let host = host.to_string_lossy();
        let first_label = |name: &str| name.split('.').next().unwrap_or_default().to_owned();
        if let Some(n) = nodes.iter_mut().find(|n| {
            !n.deleted
                && n.name
                    .as_deref()
                    .is_some_and(|name| name == host || first_label(name) == first_label(&host))
        }) {
            n.addr = addr;
        }
    }

    /// This node's private address (see [`Config::pnn`]).
    pub fn node_address(&self) -> Result<IpAddr, ConfigError> {
        self.local_node().map(|n| n.addr)
    }

    fn local_node(&self) -> Result<&NodeEntry, ConfigError> {
        let mut active = self.nodes.iter().filter(|n| !n.deleted);
        match self.cluster.node_address {
            Some(addr) => {
                active
                    .find(|n| n.addr == addr)
                    .ok_or_else(|| ConfigError::UnknownNodeAddress {
                        addr,
                        nodes_file: self
                            .base_file("nodes")
                            .unwrap_or_else(|| PathBuf::from("the default nodes list")),
                    })
            }
            None => active
                .find(|n| TcpListener::bind((n.addr, 0)).is_ok())
                .ok_or(ConfigError::NoLocalNode),
        }
    }

    /// Makes the node's directories that are missing and checks all of them (see
    /// [`crate::secure`]): the run directory (0755) and the database directories
    /// (0700) must belong to the node's user, the client socket's directory too (or be
    /// root's and sticky, as `/tmp`), the events directory and its `legacy/` (when
    /// there) to root or the node's user; none writable by group or others. Every
    /// component calls this at start and refuses to start on an error; only those that
    /// keep databases (`with_databases`: ctdb-db, ctdbd) make and check the database
    /// directories, which the others may not even see (a container of its own).
    pub fn prepare_dirs(&self, with_databases: bool) -> Result<(), crate::secure::UnsafePath> {
        use crate::secure::{check_dir, ensure_dir, ensure_socket_dir, Owners};
        ensure_dir(&self.run_dir, 0o755)?;
        let databases = [
            &self.database.volatile_dir,
            &self.database.persistent_dir,
            &self.database.state_dir,
        ];
        for dir in databases.into_iter().filter(|_| with_databases) {
            ensure_dir(dir, 0o700)?;
        }
        if let Some(parent) = self.socket.parent() {
            ensure_socket_dir(parent)?;
        }
        let events = &self.event.events_dir;
        for dir in [events.clone(), events.join("legacy")] {
            if dir.exists() {
                check_dir(&dir, Owners::RootOrDaemon)?;
            }
        }
        Ok(())
    }

    /// The socket a component listens on: `run_dir/{component}.sock`.
    pub fn rundir_socket(&self, component: &str) -> PathBuf {
        self.run_dir.join(format!("{component}.sock"))
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    fn load_base(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let base = dir.path().to_str().expect("utf-8 path");
        let mut e = env(extra);
        e.insert("CTDB_BASE".into(), base.into());
        Config::load_from(&e)
    }

    #[test]
    fn defaults_without_ctdb_base_are_samba_places() {
        let c = Config::defaults(None);
        assert_eq!(c.base.as_deref(), Some(Path::new("/etc/ctdb")));
        assert_eq!(c.socket, Path::new("/run/ctdb/ctdbd.socket"));
        assert_eq!(c.run_dir, Path::new("/run/ctdb"));
        assert_eq!(c.database.volatile_dir, Path::new("/var/lib/ctdb/volatile"));
        assert_eq!(
            c.database.persistent_dir,
            Path::new("/var/lib/ctdb/persistent")
        );
        assert_eq!(c.database.state_dir, Path::new("/var/lib/ctdb/state"));
        assert_eq!(c.event.events_dir, Path::new("/etc/ctdb/events"));
        assert_eq!(c.rundir_socket("ctdbd"), Path::new("/run/ctdb/ctdbd.sock"));
        for path in [&c.run_dir, &c.database.volatile_dir, &c.event.events_dir] {
            assert!(!path.starts_with("/tmp"), "{}", path.display());
        }
    }

    #[test]
    fn tls_needs_all_three_files() {
        let conf = "[cluster]\n\ttls certificate = /c.pem\n\ttls key = /k.pem\n";
        let dir = base_with(&[("ctdb.conf", conf)]);
        let err = load_base(&dir, &[]).expect_err("no CA").to_string();
        assert!(err.contains("[cluster] tls ca"), "{err}");
        let c = load_base(&dir, &[("CTDB_RS_TLS_CA", "/ca.pem")]).expect("all three");
        assert_eq!(
            c.cluster.tls,
            Some(TlsConfig {
                certificate: "/c.pem".into(),
                key: "/k.pem".into(),
                ca: "/ca.pem".into(),
            })
        );
        assert_eq!(
            load_base(&base_with(&[]), &[]).expect("none").cluster.tls,
            None
        );
    }

    #[test]
    fn defaults_with_an_empty_base() {
        let dir = base_with(&[]);
        let c = load_base(&dir, &[]).expect("defaults");
        assert_eq!(c.socket, Path::new("/run/ctdb/ctdbd.socket"));
        assert_eq!(c.logging.location, "stderr");
        assert_eq!(c.logging.level, "NOTICE");
        assert_eq!(c.cluster.port, 4379);
        assert_eq!(c.cluster.node_address, None);
        assert_eq!(c.cluster.recovery_lock, None);
        assert_eq!(c.event.monitor_interval_secs, 15);
        assert_eq!(c.event.script_timeout_secs, 30);
        assert!(!c.failover.disabled);
        assert_eq!(
            c.nodes,
            vec![NodeEntry {
                pnn: 0,
                addr: "127.0.0.1".parse().unwrap(),
                deleted: false,
                name: None,
            }]
        );
        assert!(c.public_addresses.is_empty());
        assert_eq!(c.pnn().expect("loopback binds"), 0);
    }

    #[test]
    fn prepare_dirs_makes_private_dirs_and_refuses_an_open_events_dir() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = base_with(&[]);
        let c = Config {
            socket: dir.path().join("sock/ctdb.socket"),
            ..load_base(&dir, &[]).expect("load")
        };
        c.prepare_dirs(true).expect("fresh dirs");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").mode() & 0o777;
        assert_eq!(mode(&c.run_dir), 0o755);
        assert_eq!(mode(&c.database.volatile_dir), 0o700);
        assert_eq!(mode(&c.database.persistent_dir), 0o700);
        assert_eq!(mode(&c.database.state_dir), 0o700);
        std::fs::create_dir_all(c.event.events_dir.join("legacy")).expect("mkdir");
        let legacy = c.event.events_dir.join("legacy");
        std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o775)).expect("chmod");
        let err = c.prepare_dirs(true).expect_err("refused").to_string();
        assert!(err.contains(&legacy.display().to_string()), "{err}");
    }

    #[test]
    fn defaults_follow_ctdb_base() {
        let dir = base_with(&[]);
        let c = load_base(&dir, &[]).expect("load");
        assert_eq!(c.base.as_deref(), Some(dir.path()));
        assert_eq!(c.run_dir, dir.path().join("run"));
        assert_eq!(c.database.state_dir, dir.path().join("db/state"));
        assert_eq!(c.event.events_dir, dir.path().join("events"));
    }

    const CONF: &str = "\
# a Samba ctdb.conf
[logging]
    location = file:/var/log/log.ctdb
    log level = INFO
[cluster]
    # Samba's stock file indents its comments
    transport = tcp
    ; and may use semicolons
    node address = 10.1.1.2
    recovery lock = /shared/.reclock
    leader capability = true
    leader timeout = 5
[database]
    volatile database directory = /v
    persistent database directory = /p
    state database directory = /s
    lock debug script = debug_locks.sh
[event]
    debug script = debug-hung-script.sh
[failover]
    disabled = Yes
[legacy]
    realtime scheduling = false
";

    #[test]
    fn ctdb_conf_with_spaced_keys_is_honoured() {
        let dir = base_with(&[("ctdb.conf", CONF)]);
        let c = load_base(&dir, &[]).expect("load");
        assert_eq!(c.logging.location, "file:/var/log/log.ctdb");
        assert_eq!(c.logging.level, "INFO");
        assert_eq!(c.cluster.node_address, Some("10.1.1.2".parse().unwrap()));
        assert_eq!(c.cluster.recovery_lock.as_deref(), Some("/shared/.reclock"));
        assert_eq!(c.database.volatile_dir, Path::new("/v"));
        assert_eq!(c.database.persistent_dir, Path::new("/p"));
        assert_eq!(c.database.state_dir, Path::new("/s"));
        assert_eq!(
            c.event.debug_script.as_deref(),
            Some("debug-hung-script.sh")
        );
        assert!(c.failover.disabled);
        // Without a nodes file the single node is the configured address.
        assert_eq!(c.nodes[0].addr, "10.1.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.pnn().expect("pnn"), 0);
    }

    #[test]
    fn env_overrides_file() {
        let dir = base_with(&[("ctdb.conf", CONF)]);
        let c = load_base(
            &dir,
            &[
                ("CTDB_NODE_ADDRESS", "10.1.1.3"),
                ("CTDB_DEBUGLEVEL", "DEBUG"),
                ("CTDB_FAILOVER_DISABLED", "no"),
                ("CTDB_STATE_DB_DIR", "/env/state"),
                ("CTDB_SOCKET", "/run/x.socket"),
                ("CTDB_RUNDIR", "/run/ctdb"),
                ("CTDB_PORT", "5000"),
                ("CTDB_MONITOR_INTERVAL", "3"),
                ("CTDB_SCRIPT_TIMEOUT", "7"),
                ("CTDB_RECOVERY_LOCK", ""),
            ],
        )
        .expect("load");
        assert_eq!(c.cluster.node_address, Some("10.1.1.3".parse().unwrap()));
        assert_eq!(c.logging.level, "DEBUG");
        assert!(!c.failover.disabled);
        assert_eq!(c.database.state_dir, Path::new("/env/state"));
        assert_eq!(c.database.volatile_dir, Path::new("/v"));
        assert_eq!(c.socket, Path::new("/run/x.socket"));
        assert_eq!(
            c.rundir_socket("eventd"),
            Path::new("/run/ctdb/eventd.sock")
        );
        assert_eq!(c.cluster.port, 5000);
        assert_eq!(c.event.monitor_interval_secs, 3);
        assert_eq!(c.event.script_timeout_secs, 7);
        assert_eq!(c.cluster.recovery_lock, None);
        // CTDB_LOG_LEVEL wins over its alias.
        let c = load_base(
            &dir,
            &[("CTDB_LOG_LEVEL", "ERROR"), ("CTDB_DEBUGLEVEL", "DEBUG")],
        )
        .expect("load");
        assert_eq!(c.logging.level, "ERROR");
    }

    #[test]
    fn bad_file_value_names_file_key_and_value() {
        let dir = base_with(&[("ctdb.conf", "[cluster]\nnode address = 1.2.3.x\n")]);
        let err = load_base(&dir, &[]).expect_err("bad address");
        let file = dir.path().join("ctdb.conf");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: [cluster] node address = \"1.2.3.x\": invalid IP address",
                file.display()
            )
        );
        assert!(matches!(err, ConfigError::Invalid { file: f, .. } if f == file));

        let dir = base_with(&[("ctdb.conf", "[failover]\ndisabled = maybe\n")]);
        let err = load_base(&dir, &[]).expect_err("bad boolean");
        assert!(err
            .to_string()
            .contains("[failover] disabled = \"maybe\": invalid boolean"));
    }

    #[test]
    fn bad_env_value_names_variable() {
        for (var, value) in [
            ("CTDB_PORT", "http"),
            ("CTDB_LOG_LEVEL", "LOUD"),
            ("CTDB_MONITOR_INTERVAL", "0"),
            ("CTDB_LOGGING_LOCATION", "printer"),
        ] {
            let err = Config::load_from(&env(&[(var, value)])).expect_err(var);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("environment: {var} = \"{value}\": ")),
                "{text}"
            );
        }
    }

    #[test]
    fn unparsable_conf_is_a_parse_error() {
        let dir = base_with(&[("ctdb.conf", "[cluster\nnode address = 1.2.3.4\n")]);
        let err = load_base(&dir, &[]).expect_err("bad ini");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("ctdb.conf"));
    }

    #[test]
    fn nodes_and_public_addresses_files_are_read() {
        let dir = base_with(&[
            ("nodes", "10.0.0.1\n#10.0.0.2\n\n127.0.0.1\n"),
            ("public_addresses", "192.168.1.10/24 eth0\n"),
        ]);
        let c = load_base(&dir, &[]).expect("load");
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.public_addresses.len(), 1);

        let c = load_base(&dir, &[("CTDB_NODE_ADDRESS", "127.0.0.1")]).expect("load");
        assert_eq!(c.pnn().expect("pnn"), 2);
        assert_eq!(
            c.node_address().expect("addr"),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );

        // A deleted node's address never matches.
        let c = load_base(&dir, &[("CTDB_NODE_ADDRESS", "0.0.0.0")]).expect("load");
        assert!(matches!(
            c.pnn(),
            Err(ConfigError::UnknownNodeAddress { .. })
        ));
        let c = load_base(&dir, &[("CTDB_NODE_ADDRESS", "10.9.9.9")]).expect("load");
        assert!(c.pnn().is_err());
    }

    #[test]
    fn pnn_without_node_address_is_first_bindable_node() {
        // 192.0.2.0/24 (TEST-NET-1) is never a local address.
        let dir = base_with(&[("nodes", "192.0.2.1\n127.0.0.1\n")]);
        let c = load_base(&dir, &[]).expect("load");
        assert_eq!(c.pnn().expect("pnn"), 1);

        let dir = base_with(&[("nodes", "192.0.2.1\n")]);
        let c = load_base(&dir, &[]).expect("load");
        assert!(matches!(c.pnn(), Err(ConfigError::NoLocalNode)));
    }

    #[test]
    fn bad_nodes_file_names_the_file() {
        let dir = base_with(&[("nodes", "10.0.0.1\nnode_two\n")]);
        let err = load_base(&dir, &[]).expect_err("bad nodes");
        let text = err.to_string();
        assert!(text.contains(&dir.path().join("nodes").display().to_string()));
        assert!(text.contains("node_two"), "{text}");
    }
}
