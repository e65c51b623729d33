//! Memory of a node's processes, read from /proc: the process whose pid the daemon
//! reports (GET_PID), climbed up to its `ctdbd` supervisor when it has one (ours: transport
//! is a child of ctdbd), and every descendant (ours: the four components; Samba's:
//! recoverd, eventd and helpers).

use std::collections::HashMap;

/// Resident memory of a set of processes, summed, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: each process's peak resident size (summed: an upper bound of the peak
    /// of the sum).
    pub hwm_kib: u64,
    /// RssAnon: the part of VmRSS that is heap and stacks, not mapped files (Samba's
    /// ctdbd maps its tdb files, which count in VmRSS).
    pub anon_kib: u64,
    pub processes: usize,
}

impl Memory {
    pub fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }
}

/// A `kB` field of /proc/PID/status ("VmRSS:\t   1234 kB").
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The parent pid in /proc/PID/stat; the command name is in parentheses and may itself
/// hold spaces and parentheses, so fields are counted after the last ')'.
pub fn stat_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    // state, then ppid
    after.split_whitespace().nth(1)?.parse().ok()
}

fn read(pid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
}

fn comm(pid: u32) -> Option<String> {
    read(pid, "comm").map(|c| c.trim_end().to_string())
}

/// Parent of every process now running.
fn parents() -> HashMap<u32, u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_ppid(&read(pid, "stat")?)?)))
        .collect()
}

/// The processes of the node whose daemon reported `pid`: up to its `ctdbd` parent if
/// it has one, then that process and all its descendants.
pub fn node_processes(pid: u32) -> Vec<u32> {
    let parents = parents();
    let mut root = pid;
    while let Some(&parent) = parents.get(&root) {
        if parent <= 1 || comm(parent).as_deref() != Some("ctdbd") {
            break;
        }
        root = parent;
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        let mut children: Vec<u32> = parents
            .iter()
            .filter(|&(_, &pp)| pp == p)
            .map(|(&c, _)| c)
            .collect();
        children.sort_unstable();
        found.extend(children);
        i += 1;
    }
    found
}

/// Summed VmRSS and VmHWM of `pids` (processes that are gone count nothing).
pub fn memory(pids: &[u32]) -> Memory {
    let mut m = Memory::default();
    for &pid in pids {
        if let Some(status) = read(pid, "status") {
            m.rss_kib += status_kib(&status, "VmRSS").unwrap_or(0);
            m.hwm_kib += status_kib(&status, "VmHWM").unwrap_or(0);
            m.anon_kib += status_kib(&status, "RssAnon").unwrap_or(0);
            m.processes += 1;
        }
    }
    m
}

/// `pid`'s processes (see [`node_processes`]) and their memory, each process named.
pub fn describe(pids: &[u32]) -> String {
    pids.iter()
        .filter_map(|&pid| {
            let rss = status_kib(&read(pid, "status")?, "VmRSS")?;
            Some(format!(
                "{}[{pid}] {:.1}",
                comm(pid).unwrap_or_default(),
                Memory::mib(rss)
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tctdb-db\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  123456 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n\
        RssAnon:\t    4000 kB\nThreads:\t3\n";

    #[test]
    fn status_fields() {
        assert_eq!(status_kib(STATUS, "VmRSS"), Some(5432));
        assert_eq!(status_kib(STATUS, "VmHWM"), Some(9876));
        assert_eq!(status_kib(STATUS, "RssAnon"), Some(4000));
        assert_eq!(status_kib(STATUS, "VmSwap"), None);
        // A prefix of another field name is not that field.
        assert_eq!(status_kib(STATUS, "Vm"), None);
        assert_eq!(status_kib("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn ppid_after_odd_command_names() {
        assert_eq!(stat_ppid("42 (ctdbd) S 7 42 42 0 -1"), Some(7));
        assert_eq!(stat_ppid("42 (a) b (c) R 9 1 1"), Some(9));
        assert_eq!(stat_ppid("42 (x y) S"), None);
        assert_eq!(stat_ppid("garbage"), None);
    }

    #[test]
    fn this_process_is_found_and_measured() {
        let me = std::process::id();
        let pids = node_processes(me);
        assert_eq!(pids.first(), Some(&me));
        let m = memory(&pids);
        assert!(m.processes >= 1);
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib && m.anon_kib <= m.rss_kib);
    }
}
