//! Two Linux network namespaces joined by a veth pair, and iptables rules inside them, for
//! network-fault tests between node processes.
//!
//! The namespaces are made for one test and deleted by [`Pair`]'s `Drop`, even when the test
//! panics; the veth ends are created inside them (never in the host's namespace) and vanish
//! with them, and so do the rules. Nothing here touches the host's own interfaces or
//! firewall. The addresses are private ones that exist only on that veth pair. The rules match
//! packets arriving on the veth end only (`-i`), so each namespace's loopback stays clean.
//!
//! Needs root, `ip` (iproute2) and `iptables`. [`Pair::create`] answers `Err(reason)` when one
//! is missing or the kernel refuses, and the caller skips its test with that reason.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Prefix of every namespace this module makes: `<prefix><pid>-<tag>-a`.
const PREFIX: &str = "hotline-nf-";
/// The veth ends, named inside their own namespace: `hl0` in A, `hl1` in B.
const IFACES: [&str; 2] = ["hl0", "hl1"];
/// iptables front ends, most usual first. `iptables` is whichever `update-alternatives` chose
/// (Debian: `iptables-nft`). Either backend filters inside a namespace as long as the kernel
/// has it; the first that takes a rule like the tests' in a fresh namespace is used, and always
/// the same one for adding and deleting.
const IPTABLES: [&str; 3] = ["iptables", "iptables-nft", "iptables-legacy"];
/// Set to one front end (e.g. `iptables-legacy`) to use only that one.
const ENV_IPTABLES: &str = "HOTLINE_NETNS_IPTABLES";

/// Two namespaces `A` and `B` and the veth pair between them.
#[derive(Debug)]
pub struct Pair {
    /// The `ip` program.
    ip: String,
    names: [String; 2],
    addrs: [Ipv4Addr; 2],
    iptables: String,
    /// What the chosen iptables says of itself (`iptables v1.8.9 (nf_tables)`).
    iptables_version: String,
    /// Rules added and not yet deleted: (side, rule arguments after the chain).
    rules: Vec<(usize, Vec<String>)>,
}

/// Packets counted by the rules of one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that arrived on the veth end (counted before any drop rule).
    pub arrived: u64,
    /// Packets a DROP rule dropped.
    pub dropped: u64,
}

impl Pair {
    /// Creates namespaces `hotline-nf-<pid>-<tag>-{a,b}`, a veth pair with 10.231.0.1/30 in A
    /// and 10.231.0.2/30 in B, every link up, and an accounting rule on each veth end.
    /// `Err` says why it could not (not root, a tool missing, namespaces refused).
    pub fn create(tag: &str) -> Result<Pair, String> {
        if !is_root() {
            return Err("not running as root (network namespaces and iptables need root)".into());
        }
        let Some(ip) = find("ip") else {
            return Err("`ip` (iproute2) is not installed".into());
        };
        let installed: Vec<String> = candidates().iter().filter_map(|c| find(c)).collect();
        if installed.is_empty() {
            return Err(format!(
                "iptables is not installed (looked for {})",
                candidates().join(", ")
            ));
        }
        remove_stale(&ip);
        let pid = std::process::id();
        let mut pair = Pair {
            ip: ip.clone(),
            names: [
                format!("{PREFIX}{pid}-{tag}-a"),
                format!("{PREFIX}{pid}-{tag}-b"),
            ],
            addrs: [Ipv4Addr::new(10, 231, 0, 1), Ipv4Addr::new(10, 231, 0, 2)],
            iptables: String::new(),
            iptables_version: String::new(),
            rules: Vec::new(),
        };
        for name in &pair.names {
            // The `Drop` of `pair` deletes what exists, should a later step fail.
            run(&ip, &["netns", "add", name])
                .map_err(|e| format!("cannot create a network namespace: {e}"))?;
        }
        let [a, b] = &pair.names;
        let [ia, ib] = IFACES;
        run(
            &ip,
            &[
                "link", "add", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b,
            ],
        )
        .map_err(|e| format!("cannot create a veth pair between the namespaces: {e}"))?;
        for (side, iface) in IFACES.iter().enumerate() {
            let ns = &pair.names[side];
            let addr = format!("{}/30", pair.addrs[side]);
            for args in [
                &["addr", "add", &addr, "dev", iface][..],
                &["link", "set", iface, "up"],
                &["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["-n", ns.as_str()];
                full.extend_from_slice(args);
                run(&ip, &full).map_err(|e| format!("cannot set up namespace {ns}: {e}"))?;
            }
        }
        pair.iptables = pair.pick_iptables(&installed)?;
        pair.iptables_version = run(&pair.iptables, &["--version"])
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|e| e);
        // Accounting: a rule with no target counts every packet arriving on the veth end and
        // lets it on to the rules below it. It stays until the namespaces go.
        for (side, iface) in IFACES.iter().enumerate() {
            pair.iptables_in(side, &["-A", "INPUT", "-i", iface])
                .map_err(|e| format!("iptables: cannot add a rule: {e}"))?;
        }
        Ok(pair)
    }

    /// The address of side 0 (A) or 1 (B), on its veth end.
    pub fn addr(&self, side: usize) -> Ipv4Addr {
        self.addrs[side]
    }

    /// The name of the namespace of side 0 (A) or 1 (B).
    pub fn name(&self, side: usize) -> &str {
        &self.names[side]
    }

    /// The iptables front end in use, and what it says of itself (the version tells the
    /// backend: `nf_tables` or `legacy`).
    pub fn iptables(&self) -> String {
        format!("{}, {}", self.iptables, self.iptables_version)
    }

    /// A command that runs `program` inside the namespace of `side`.
    pub fn command(&self, side: usize, program: &str) -> Command {
        let mut c = Command::new(&self.ip);
        c.args(["netns", "exec", &self.names[side], program]);
        c
    }

    /// Drops, at random, `probability` of the packets arriving on each veth end (both
    /// directions). Undone by [`Pair::clear`].
    pub fn lose(&mut self, probability: f64) -> Result<(), String> {
        let p = format!("{probability}");
        for side in 0..2 {
            self.add_drop(
                side,
                &["-m", "statistic", "--mode", "random", "--probability", &p],
            )?;
        }
        Ok(())
    }

    /// Drops every packet arriving on each veth end: a partition. Undone by [`Pair::clear`].
    pub fn partition(&mut self) -> Result<(), String> {
        for side in 0..2 {
            self.add_drop(side, &[])?;
        }
        Ok(())
    }

    /// Deletes every rule that [`Pair::lose`] or [`Pair::partition`] added, and checks that
    /// no DROP rule is left.
    pub fn clear(&mut self) -> Result<(), String> {
        while let Some((side, rule)) = self.rules.pop() {
            let mut args = vec!["-D", "INPUT"];
            args.extend(rule.iter().map(String::as_str));
            self.iptables_in(side, &args)
                .map_err(|e| format!("iptables: cannot delete a rule: {e}"))?;
        }
        for side in 0..2 {
            let listed = self.iptables_in(side, &["-S", "INPUT"])?;
            if listed.contains("-j DROP") {
                return Err(format!(
                    "a DROP rule is left in {} after clearing:\n{listed}",
                    self.names[side]
                ));
            }
        }
        Ok(())
    }

    /// The packets counted on the veth end of `side` so far.
    pub fn counters(&self, side: usize) -> Result<Counters, String> {
        let listed = self.iptables_in(side, &["-L", "INPUT", "-v", "-x", "-n"])?;
        let mut c = Counters::default();
        // Rows: pkts bytes target prot opt in out source destination [match…]. The accounting
        // rule has no target, so its third column is the protocol.
        for line in listed.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(pkts) = cols.first().and_then(|p| p.parse::<u64>().ok()) else {
                continue;
            };
            match cols.get(2) {
                Some(&"DROP") => c.dropped += pkts,
                Some(_) if !cols.contains(&"DROP") => c.arrived += pkts,
                _ => {}
            }
        }
        Ok(c)
    }

    fn add_drop(&mut self, side: usize, matches: &[&str]) -> Result<(), String> {
        let mut rule: Vec<String> = vec!["-i".into(), IFACES[side].into()];
        rule.extend(matches.iter().map(|s| s.to_string()));
        rule.extend(["-j".into(), "DROP".into()]);
        let mut args = vec!["-A", "INPUT"];
        args.extend(rule.iter().map(String::as_str));
        self.iptables_in(side, &args)
            .map_err(|e| format!("iptables: cannot add a rule: {e}"))?;
        self.rules.push((side, rule));
        Ok(())
    }

    /// Runs the chosen iptables in the namespace of `side`; its stdout.
    fn iptables_in(&self, side: usize, args: &[&str]) -> Result<String, String> {
        let mut full = vec![
            "netns",
            "exec",
            &self.names[side],
            &self.iptables,
            "-w",
            "5",
        ];
        full.extend_from_slice(args);
        run(&self.ip, &full)
    }

    /// The first iptables front end that lists, adds and deletes a rule in namespace A, with
    /// the random match that [`Pair::lose`] needs.
    fn pick_iptables(&mut self, installed: &[String]) -> Result<String, String> {
        let probe = [
            "INPUT",
            "-i",
            IFACES[0],
            "-p",
            "udp",
            "--dport",
            "9",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.5",
            "-j",
            "DROP",
        ];
        let mut why = Vec::new();
        for ipt in installed {
            self.iptables = ipt.clone();
            let tried = self
                .iptables_in(0, &["-S", "INPUT"])
                .and_then(|_| self.iptables_in(0, &[&["-A"][..], &probe].concat()))
                .and_then(|_| self.iptables_in(0, &[&["-D"][..], &probe].concat()));
            match tried {
                Ok(_) => return Ok(ipt.clone()),
                Err(e) => why.push(format!("{ipt}: {e}")),
            }
        }
        self.iptables.clear();
        Err(format!(
            "no iptables works in a network namespace here ({})",
            why.join("; ")
        ))
    }

    /// Clears the faults, deletes both namespaces (and with them the veth pair and every
    /// rule), and checks that they are gone. `Drop` does the same without the checks.
    pub fn close(mut self) -> Result<(), String> {
        self.clear()?;
        let names = std::mem::take(&mut self.names);
        for name in &names {
            run(&self.ip, &["netns", "del", name])?;
        }
        let left = run(&self.ip, &["netns", "list"])?;
        for name in &names {
            if left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name.as_str()))
            {
                return Err(format!("namespace {name} is still there after deleting it"));
            }
        }
        Ok(())
    }
}

impl Drop for Pair {
    /// Deletes the namespaces, and with them the veth pair and every rule. Processes still
    /// running in a namespace keep it alive until they exit, so callers stop theirs first.
    fn drop(&mut self) {
        if !self.iptables.is_empty() && self.names.iter().all(|n| !n.is_empty()) {
            let _ = self.clear();
        }
        for name in self.names.iter().filter(|n| !n.is_empty()) {
            let _ = Command::new(&self.ip)
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The iptables front ends to try, in order.
fn candidates() -> Vec<String> {
    match std::env::var(ENV_IPTABLES) {
        Ok(one) if !one.is_empty() => vec![one],
        _ => IPTABLES.iter().map(|s| s.to_string()).collect(),
    }
}

/// The path of `program`: on `PATH`, or in the sbin directories (where `ip` and `iptables`
/// live, and which a non-login root shell may not have on its `PATH`).
fn find(program: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether this process runs as root: the effective uid, from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Deletes namespaces left by an earlier run of these tests whose process is gone (killed
/// before its `Drop` ran). Only names with this module's prefix and a dead pid are touched.
fn remove_stale(ip: &str) {
    let Ok(out) = run(ip, &["netns", "list"]) else {
        return;
    };
    for line in out.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(ip, &["netns", "del", name]);
        }
    }
}

/// Runs a command to completion; its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out: Output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
