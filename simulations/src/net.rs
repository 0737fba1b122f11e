//! The simulated network: WAN links between each node and the hub, a LAN per
//! group of nodes. Each link has latency with jitter (which reorders
//! messages), loss and duplication, and can be cut in either direction
//! (symmetric and one-way partitions). The network only decides *when* (if
//! ever) a message arrives; the world's event queue carries it.

use crate::clock::SimTime;
use crate::prng::Prng;

/// How a link behaves while it is up.
#[derive(Clone, Copy, Debug)]
pub struct LinkParams {
    /// One-way latency floor, ms.
    pub latency_ms: u64,
    /// Extra latency drawn uniformly from `0..=jitter_ms` per message (so
    /// later messages can overtake earlier ones).
    pub jitter_ms: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub dup: f64,
}

impl LinkParams {
    /// A rural or mobile WAN link: slow, lossy.
    pub const WAN: LinkParams = LinkParams {
        latency_ms: 60,
        jitter_ms: 400,
        loss: 0.02,
        dup: 0.005,
    };
    /// A festival LAN (Wi-Fi between stalls).
    pub const LAN: LinkParams = LinkParams {
        latency_ms: 2,
        jitter_ms: 30,
        loss: 0.01,
        dup: 0.002,
    };
}

/// Direction of a WAN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Node to hub.
    Up,
    /// Hub to node.
    Down,
}

/// One node's WAN link: its schedule (when the line is there at all) and a
/// fault overlay (cuts), per direction.
#[derive(Clone, Debug)]
pub struct WanLink {
    /// The schedule lets node → hub pass.
    pub sched_up: bool,
    /// The schedule lets hub → node pass.
    pub sched_down: bool,
    /// A fault cuts node → hub.
    pub cut_up: bool,
    /// A fault cuts hub → node.
    pub cut_down: bool,
    /// Behaviour while passing.
    pub params: LinkParams,
}

impl WanLink {
    /// Node → hub passes.
    pub fn up_ok(&self) -> bool {
        self.sched_up && !self.cut_up
    }
    /// Hub → node passes.
    pub fn down_ok(&self) -> bool {
        self.sched_down && !self.cut_down
    }
    /// Fully up in both directions.
    pub fn is_up(&self) -> bool {
        self.up_ok() && self.down_ok()
    }
}

/// Counters of what crossed the network.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    /// Bytes sent on WAN links (requests and responses, encoded).
    pub wan_bytes: u64,
    /// Bytes sent between LAN peers.
    pub lan_bytes: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages lost (by loss or a cut link).
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
}

/// The network.
#[derive(Debug)]
pub struct Net {
    /// Per node WAN link.
    pub wan: Vec<WanLink>,
    /// Per node LAN group (nodes in the same group reach each other).
    pub lan_group: Vec<Option<usize>>,
    /// Per node: its LAN cable is in.
    pub lan_ok: Vec<bool>,
    /// LAN behaviour.
    pub lan_params: LinkParams,
    /// The hub process is up (messages to a down hub are lost).
    pub hub_up: bool,
    /// Counters.
    pub stats: NetStats,
    rng: Prng,
}

impl Net {
    /// A network of `n` nodes, all WAN links up with `wan` behaviour.
    pub fn new(n: usize, wan: LinkParams, lan: LinkParams, rng: Prng) -> Net {
        Net {
            wan: (0..n)
                .map(|_| WanLink {
                    sched_up: true,
                    sched_down: true,
                    cut_up: false,
                    cut_down: false,
                    params: wan,
                })
                .collect(),
            lan_group: vec![None; n],
            lan_ok: vec![true; n],
            lan_params: lan,
            hub_up: true,
            stats: NetStats::default(),
            rng,
        }
    }

    /// Whether a WAN message in `dir` for node `n` passes right now.
    pub fn wan_passes(&self, n: usize, dir: Dir) -> bool {
        let l = &self.wan[n];
        self.hub_up
            && match dir {
                Dir::Up => l.up_ok(),
                Dir::Down => l.down_ok(),
            }
    }

    /// A node can open a connection: both directions pass and the hub is up.
    pub fn can_connect(&self, n: usize) -> bool {
        self.hub_up && self.wan[n].is_up()
    }

    /// Sends `len` bytes on node `n`'s WAN link in `dir` at `now`: the
    /// arrival times (none if lost, two if duplicated).
    pub fn send_wan(&mut self, n: usize, dir: Dir, len: usize, now: SimTime) -> Vec<SimTime> {
        self.stats.wan_bytes += len as u64;
        self.stats.sent += 1;
        if !self.wan_passes(n, dir) {
            self.stats.lost += 1;
            return vec![];
        }
        let p = self.wan[n].params;
        self.deliveries(p, now)
    }

    /// Whether nodes `a` and `b` reach each other on a LAN right now.
    pub fn lan_reach(&self, a: usize, b: usize) -> bool {
        a != b
            && self.lan_group[a].is_some()
            && self.lan_group[a] == self.lan_group[b]
            && self.lan_ok[a]
            && self.lan_ok[b]
    }

    /// Sends `len` bytes from `a` to `b` on their LAN: the arrival times.
    pub fn send_lan(&mut self, a: usize, b: usize, len: usize, now: SimTime) -> Vec<SimTime> {
        self.stats.lan_bytes += len as u64;
        self.stats.sent += 1;
        if !self.lan_reach(a, b) {
            self.stats.lost += 1;
            return vec![];
        }
        self.deliveries(self.lan_params, now)
    }

    fn deliveries(&mut self, p: LinkParams, now: SimTime) -> Vec<SimTime> {
        if self.rng.chance(p.loss) {
            self.stats.lost += 1;
            return vec![];
        }
        let mut out = vec![now + p.latency_ms + self.rng.range(0, p.jitter_ms)];
        if self.rng.chance(p.dup) {
            self.stats.duplicated += 1;
            out.push(now + p.latency_ms + self.rng.range(0, p.jitter_ms * 2));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_links_lose_and_one_way_cuts_are_one_way() {
        let mut net = Net::new(2, LinkParams::WAN, LinkParams::LAN, Prng::new(1));
        net.wan[0].cut_up = true;
        assert!(net.send_wan(0, Dir::Up, 10, 0).is_empty());
        assert!(!net.can_connect(0));
        let mut got = 0;
        for _ in 0..100 {
            got += net.send_wan(0, Dir::Down, 10, 0).len();
        }
        assert!(got > 80, "down direction still passes");
        net.hub_up = false;
        assert!(net.send_wan(1, Dir::Up, 10, 0).is_empty());
        assert_eq!(net.stats.wan_bytes, 1020);
    }

    #[test]
    fn lan_needs_same_group_and_cables() {
        let mut net = Net::new(3, LinkParams::WAN, LinkParams::LAN, Prng::new(1));
        net.lan_group = vec![Some(0), Some(0), Some(1)];
        assert!(net.lan_reach(0, 1));
        assert!(!net.lan_reach(0, 2));
        net.lan_ok[1] = false;
        assert!(!net.lan_reach(0, 1));
    }
}
