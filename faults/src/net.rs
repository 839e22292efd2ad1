//! The network the nodes live on: a bridge in a namespace of its own (`rgf-net`, the
//! switch), one namespace per node joined to it by a veth pair, each node with its own
//! address, and one veth from the root namespace, where the clients run.
//!
//! ```text
//!   root ns: rgf-host 10.77.0.1/24 (clients) ─┐
//!                                  ns rgf-net: br0 ─┬─ core1 ─ ns rgf-core1: eth0 10.77.0.11
//!                                                   ├─ core2 ─ ns rgf-core2: eth0 10.77.0.12
//!                                                   ├─ core3 ─ ns rgf-core3: eth0 10.77.0.13
//!                                                   ├─ edge1 ─ ns rgf-edge1: eth0 10.77.0.21
//!                                                   ├─ edge2 ─ ns rgf-edge2: eth0 10.77.0.22
//!                                                   └─ s3 ──── ns rgf-s3:    eth0 10.77.0.30
//! ```
//!
//! `rgf-s3` holds the S3-compatible object store the nodes share ([`crate::s3`]), so that
//! it can be cut off like any node.
//!
//! The bridge lives apart from the root namespace so that the host's firewall (a FORWARD
//! policy of DROP, bridged frames passed to iptables) never sees the nodes' traffic. Every
//! name starts with `rgf`; [`cleanup`] removes whatever a run (this one or an earlier one
//! that died) left behind (also the small disk of [`crate::disk`]), and [`Net`]'s `Drop`
//! calls it. Faults are iptables rules inside a node's namespace; each cut remembers its
//! rules ([`Cut`]) so that overlapping faults are undone one by one.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The switch namespace, holding the bridge.
const SWITCH: &str = "rgf-net";
/// The root namespace's end of its veth into the switch.
const HOST_LINK: &str = "rgf-host";
/// The root namespace's address: where clients come from.
pub const CLIENT_IP: &str = "10.77.0.1";
/// The prefix of every namespace and link this suite creates.
const PREFIX: &str = "rgf";

/// One node's place on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Namespace name, also the name of the veth end on the bridge (`rgf-core1`).
    pub ns: String,
    pub ip: String,
}

/// The hosts of the suite's cluster: three cores, two edges.
pub fn hosts() -> Vec<Host> {
    let core = (1..=3).map(|i| Host {
        ns: format!("rgf-core{i}"),
        ip: format!("10.77.0.1{i}"),
    });
    let edge = (1..=2).map(|i| Host {
        ns: format!("rgf-edge{i}"),
        ip: format!("10.77.0.2{i}"),
    });
    core.chain(edge).collect()
}

/// The object store's host: its own namespace on the same bridge.
pub fn s3_host() -> Host {
    Host {
        ns: "rgf-s3".into(),
        ip: "10.77.0.30".into(),
    }
}

/// The iptables rules one fault added in one namespace, to be deleted when it is undone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    rules: Vec<(String, Vec<String>)>,
}

/// Runs a command to completion; an error names it and carries its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `args` inside namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The network, torn down when dropped.
#[derive(Debug)]
pub struct Net {
    /// The nodes' hosts, in the order of [`hosts`].
    pub hosts: Vec<Host>,
    /// The object store's host ([`s3_host`]).
    pub s3: Host,
}

impl Net {
    /// Removes leftovers of earlier runs, then builds the bridge and the namespaces.
    pub fn create() -> Result<Self> {
        cleanup();
        let net = Self {
            hosts: hosts(),
            s3: s3_host(),
        };
        run("ip", &["netns", "add", SWITCH])?;
        run(
            "ip",
            &["-n", SWITCH, "link", "add", "br0", "type", "bridge"],
        )?;
        run("ip", &["-n", SWITCH, "link", "set", "br0", "up"])?;
        run("ip", &["-n", SWITCH, "link", "set", "lo", "up"])?;
        let attach = |switch_end: &str| -> Result<()> {
            run(
                "ip",
                &[
                    "-n", SWITCH, "link", "set", switch_end, "master", "br0", "up",
                ],
            )
        };
        let own = std::process::id().to_string(); // our network namespace, by our pid
        run(
            "ip",
            &[
                "-n", SWITCH, "link", "add", "host", "type", "veth", "peer", "name", HOST_LINK,
                "netns", &own,
            ],
        )?;
        attach("host")?;
        run(
            "ip",
            &["addr", "add", &format!("{CLIENT_IP}/24"), "dev", HOST_LINK],
        )?;
        run("ip", &["link", "set", HOST_LINK, "up"])?;
        for host in net.hosts.iter().chain([&net.s3]) {
            let ns = host.ns.as_str();
            let switch_end = ns.trim_start_matches("rgf-");
            run("ip", &["netns", "add", ns])?;
            run(
                "ip",
                &[
                    "-n", SWITCH, "link", "add", switch_end, "type", "veth", "peer", "name",
                    "eth0", "netns", ns,
                ],
            )?;
            attach(switch_end)?;
            let address = format!("{}/24", host.ip);
            run("ip", &["-n", ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Drops every packet between `host` and `peers` (`inbound_only`: only what comes in);
    /// the rules added, for [`Net::uncut`].
    pub fn cut(&self, host: &Host, peers: &[&Host], inbound_only: bool) -> Result<Cut> {
        let mut cut = Cut::default();
        for peer in peers {
            let mut rules = vec![("INPUT", "-s")];
            if !inbound_only {
                rules.push(("OUTPUT", "-d"));
            }
            for (chain, dir) in rules {
                let rule: Vec<String> = [chain, dir, &peer.ip, "-j", "DROP"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let mut add = vec!["iptables", "-A"];
                add.extend(rule.iter().map(String::as_str));
                in_ns(&host.ns, &add)?;
                cut.rules.push((host.ns.clone(), rule));
            }
        }
        Ok(cut)
    }

    /// Deletes the rules of one cut (each rule once: a rule another fault added too stays
    /// until that fault is undone).
    pub fn uncut(&self, cut: &Cut) -> Result<()> {
        for (ns, rule) in cut.rules.iter().rev() {
            let mut delete = vec!["iptables", "-D"];
            delete.extend(rule.iter().map(String::as_str));
            in_ns(ns, &delete)?;
        }
        Ok(())
    }

    /// Removes every rule of every namespace.
    pub fn heal(&self) -> Result<()> {
        for host in self.hosts.iter().chain([&self.s3]) {
            in_ns(&host.ns, &["iptables", "-F"])?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Removes every namespace and link whose name starts with `rgf`, killing the processes
/// still running in those namespaces (they were started by this suite). Errors are
/// ignored: this runs on every exit path, including after a failed setup.
pub fn cleanup() {
    for line in output("ip", &["netns", "list"]).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        if !ns.starts_with(PREFIX) {
            continue;
        }
        for pid in output("ip", &["netns", "pids", ns]).split_whitespace() {
            let _ = run("kill", &["-KILL", pid]);
        }
        let _ = run("ip", &["netns", "del", ns]);
    }
    for line in output("ip", &["-o", "link", "show"]).lines() {
        // "12: rgf-core1@if2: <...>" → "rgf-core1"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with(PREFIX) {
            let _ = run("ip", &["link", "del", name]);
        }
    }
    crate::disk::unmount_leftovers();
}

/// Whether this process can build the network: root, with `ip netns` and `iptables`.
pub fn available() -> Result<(), String> {
    let uid = output("id", &["-u"]);
    if uid.trim() != "0" {
        return Err(format!("not root (uid {})", uid.trim()));
    }
    for (program, arg) in [("ip", "netns"), ("iptables", "--version")] {
        let ok = Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("`{program} {arg}` does not run"));
        }
    }
    Ok(())
}
