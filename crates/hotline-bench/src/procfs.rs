//! What Linux tells about a process: CPU time (`/proc/PID/stat`) and memory
//! (`/proc/PID/status`).

use std::process::Command;

/// Clock ticks per second, the unit of `utime` and `stime` in `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
pub struct ClkTck {
    /// Ticks per second.
    pub hz: u64,
    /// True if `getconf CLK_TCK` did not answer and 100 (Linux's USER_HZ everywhere in
    /// practice) is assumed.
    pub assumed: bool,
}

impl ClkTck {
    /// Asks `getconf CLK_TCK`; assumes 100 if that fails.
    pub fn detect() -> Self {
        let asked = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|hz| *hz > 0);
        match asked {
            Some(hz) => ClkTck { hz, assumed: false },
            None => ClkTck {
                hz: 100,
                assumed: true,
            },
        }
    }

    /// Ticks as seconds.
    pub fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.hz as f64
    }
}

/// `utime + stime` (user and system CPU time, in clock ticks) from the text of
/// `/proc/PID/stat`.
///
/// The second field, the command name, is in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`: the next one is field 3 (state),
/// and utime and stime are fields 14 and 15 (proc(5)).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status` (e.g. `VmHWM`, `VmRSS`), in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k != key {
            return None;
        }
        let mut parts = v.split_whitespace();
        let n = parts.next()?.parse().ok()?;
        (parts.next() == Some("kB")).then_some(n)
    })
}

/// CPU ticks used so far by process `pid` (all its threads), if it is alive.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks used so far by this process.
pub fn own_cpu_ticks() -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// A memory figure of process `pid` in KiB: `VmHWM` (peak resident set) or `VmRSS` (now).
pub fn memory_kib(pid: u32, key: &str) -> Option<u64> {
    parse_status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_command_name_with_spaces_and_parentheses() {
        // Fields 14 and 15 are 1234 and 56; the name "(a) b)" would fool a naive split.
        let stat = "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 \
                    123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1";
        assert_eq!(parse_cpu_ticks(stat), Some(1290));
    }

    #[test]
    fn refuses_a_truncated_stat_line() {
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis at all"), None);
    }

    #[test]
    fn reads_a_kib_line_of_status_by_exact_key() {
        let status = "Name:\thotline-bench\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\n\
                      VmRSS:\t   70000 kB\nThreads:\t4\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(81234));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(70000));
        assert_eq!(parse_status_kib(status, "VmHW"), None);
        // Not a kB line.
        assert_eq!(parse_status_kib(status, "Threads"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory_figures() {
        assert!(own_cpu_ticks().is_some());
        assert!(memory_kib(std::process::id(), "VmHWM").is_some_and(|k| k > 0));
    }
}
