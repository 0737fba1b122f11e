//! The full-size strict festival against its goal (issue 20, goal 7: ≤ 2
//! minutes and ≤ 1 GB): runs `mykey-simulations festival-strict --long
//! --seed 7 --jobs 1` (the release binary beside this one) as a child and
//! prints its wall time, its CPU time (user + system: the figure other
//! load on the machine does not move) and its peak RSS (`VmHWM`, sampled
//! every 100 ms from /proc), each against the goal as a ratio. The nodes'
//! SQLite files of the simulation live on /dev/shm, memory that RSS does not
//! count: the peak of the files the child holds open there is printed too,
//! and their sum with the RSS.
//!
//! ```sh
//! cargo build --release -p mykey-simulations --bin mykey-simulations -p mykey-tests --bin bench_festival
//! target/release/bench_festival                   # full size (half an hour on a loaded 2-core machine)
//! BENCH_LONG=0 target/release/bench_festival      # the short festival: shows the printing works
//! BENCH_SEED=8 target/release/bench_festival      # another seed
//! ```
#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Goal 7: the full-size strict festival in at most this long…
const GOAL_SECS: f64 = 120.0;
/// …and this much memory.
const GOAL_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;

fn simulations_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().join("mykey-simulations");
    if !p.is_file() {
        eprintln!(
            "{} is missing: build it first with `cargo build --release -p mykey-simulations --bin mykey-simulations`",
            p.display()
        );
        std::process::exit(2);
    }
    p
}

/// A value of `/proc/PID/status` in kB (`VmHWM:`, `VmRSS:`), if the
/// process is still there.
fn vm_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU seconds (user, system) of a process so far, from `/proc/PID/stat`.
fn cpu_secs(pid: u32, ticks_per_s: f64) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? / ticks_per_s, ticks(12)? / ticks_per_s))
}

/// Bytes of the distinct files under /dev/shm that `pid` holds open.
fn shm_bytes(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let mut files: HashMap<PathBuf, u64> = HashMap::new();
    for fd in fds.filter_map(Result::ok) {
        if let Ok(target) = std::fs::read_link(fd.path())
            && target.starts_with("/dev/shm")
            && let Ok(meta) = std::fs::metadata(&target)
        {
            files.insert(target, meta.len());
        }
    }
    files.values().sum()
}

fn main() {
    let long = std::env::var("BENCH_LONG").map_or(true, |v| v != "0");
    let seed = std::env::var("BENCH_SEED").unwrap_or_else(|_| "7".into());
    let out = tempfile::tempdir().unwrap();
    let ticks_per_s: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let mut cmd = Command::new(simulations_bin());
    cmd.args(["festival-strict", "--seed", &seed, "--jobs", "1", "--out"])
        .arg(out.path());
    if long {
        cmd.arg("--long");
    }
    println!(
        "== the strict festival, {} (seed {seed}), against goal 7 (≤ 2 min, ≤ 1 GB)",
        if long {
            "full size"
        } else {
            "short (BENCH_LONG=0)"
        }
    );
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mykey-simulations");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // Sampled until the child exits; the last samples are the figures.
    let (mut hwm_kb, mut shm_peak, mut cpu) = (0u64, 0u64, (0.0, 0.0));
    let mut rss_plus_shm_peak = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Some(h) = vm_kb(pid, "VmHWM:") {
            hwm_kb = hwm_kb.max(h);
        }
        let shm = shm_bytes(pid);
        shm_peak = shm_peak.max(shm);
        let rss = vm_kb(pid, "VmRSS:").unwrap_or(0) * 1024;
        rss_plus_shm_peak = rss_plus_shm_peak.max(rss + shm);
        if let Some(c) = cpu_secs(pid, ticks_per_s) {
            cpu = c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = start.elapsed().as_secs_f64();
    let lines = reader.join().unwrap();
    for l in lines
        .iter()
        .filter(|l| l.contains("runs in") || l.contains("redeem"))
    {
        println!("  simulation: {}", l.trim());
    }
    let peak = hwm_kb as f64 * 1024.0;
    println!(
        "wall {wall:.1} s = {:.2} × the goal of {GOAL_SECS:.0} s; CPU {:.1} s (user {:.1} + system {:.1}) = {:.2} × the goal",
        wall / GOAL_SECS,
        cpu.0 + cpu.1,
        cpu.0,
        cpu.1,
        (cpu.0 + cpu.1) / GOAL_SECS
    );
    println!(
        "peak RSS {:.0} MiB = {:.2} × the goal of 1 GiB; node files on /dev/shm peak {:.0} MiB; \
         RSS + those files peak {:.0} MiB = {:.2} × the goal",
        peak / 1048576.0,
        peak / GOAL_BYTES,
        shm_peak as f64 / 1048576.0,
        rss_plus_shm_peak as f64 / 1048576.0,
        rss_plus_shm_peak as f64 / GOAL_BYTES
    );
    if !status.success() {
        println!("the simulation failed ({status}): its figures above are of a failed run");
        std::process::exit(1);
    }
}
