//! The systemd notification protocol (`sd_notify(3)`), for a unit of `Type=notify` (issue 16):
//! `READY=1` once the node listens and its links are started, `RELOADING=1` … `READY=1` around
//! a SIGHUP reload, `STOPPING=1` at shutdown, and `WATCHDOG=1` every half of `WATCHDOG_USEC`
//! while the runtime turns. Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the Unix socket `$NOTIFY_SOCKET` (a
//! path, or an abstract name written with a leading `@`); it needs no library.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where systemd listens, if it started this process.
fn socket_addr() -> Option<std::os::unix::net::SocketAddr> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let path = path.to_str()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).ok()
    } else {
        std::os::unix::net::SocketAddr::from_pathname(path).ok()
    }
}

/// Sends `state` (e.g. `READY=1`) to systemd; false if there is no socket or it failed (a
/// notification that cannot be delivered is not a reason to stop the node).
pub fn notify(state: &str) -> bool {
    let Some(addr) = socket_addr() else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    sock.send_to_addr(state.as_bytes(), &addr).is_ok()
}

/// `READY=1` with a status line for `systemctl status`.
pub fn ready(status: &str) {
    let _ = notify(&format!("READY=1\nSTATUS={status}"));
}

/// The start of a reload (`RELOADING=1`; `READY=1` follows when it is done). The unit is
/// `Type=notify` with `ExecReload=` sending SIGHUP, for which systemd needs no timestamp.
pub fn reloading() {
    let _ = notify("RELOADING=1");
}

/// The node is stopping.
pub fn stopping() {
    let _ = notify("STOPPING=1");
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if systemd asks for it (and
/// `$WATCHDOG_PID`, when set, is this process).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every `every` for as long as the runtime runs it: a node whose runtime
/// is stuck stops sending, and systemd restarts it.
pub async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = notify("WATCHDOG=1");
    }
}
