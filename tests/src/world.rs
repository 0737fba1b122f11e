//! A small world for the demo and the end-to-end tests: a hub and three nodes
//! (a library, a community centre, a festival stall) of Bunkyo-ku, each in its
//! own real data directory, and three registered holders.

use crate::harness::{self, SyncReport};
use anyhow::{Context, Result};
use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_node::Node;
use mykey_node::config::{DataDir, NodeConfig};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, OpKind, Points, ProgramId,
    UnixMillis,
};
use std::path::{Path, PathBuf};

/// Bunkyo-ku, the worked example of DESIGN §4.
pub fn bunkyo() -> MunicipalityCode {
    #[allow(clippy::expect_used)]
    MunicipalityCode::parse("131059").expect("131059 is a valid code")
}

/// Points, for amounts written in code.
pub fn pts(n: u64) -> Points {
    #[allow(clippy::expect_used)]
    Points::new(n).expect("amount within bounds")
}

/// A test card key: a JPKI-like issuer and a chosen serial.
pub fn card(serial: u32) -> CardKey {
    // DER of C=JP, O=JPKI, OU=JPKI for user authentication (test CA).
    let issuer = b"0F1\x0b0\t\x06\x03U\x04\x06\x13\x02JP1\r0\x0b\x06\x03U\x04\n\x0c\x04JPKI1(0&\x06\x03U\x04\x0b\x0c\x1fJPKI for user authentication".to_vec();
    #[allow(clippy::expect_used)]
    CardKey::new(issuer, serial.to_be_bytes().to_vec()).expect("valid card key")
}

/// One node of the world.
pub struct Site {
    /// Name for display.
    pub name: &'static str,
    /// Its facility.
    pub facility: FacilityId,
    /// The node core.
    pub node: Node,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its limits.
    pub policy: NodePolicy,
}

/// A registered holder.
pub struct Holder {
    /// Alias.
    pub my_key_id: MyKeyId,
    /// Card.
    pub card: CardKey,
    /// Account.
    pub account: AccountId,
}

/// The hub, three sites and three holders.
pub struct World {
    /// The hub core.
    pub hub: Hub,
    /// Library, community centre, festival stall.
    pub sites: Vec<Site>,
    /// Hanako, Taro, Jiro.
    pub holders: Vec<Holder>,
    /// Virtual clock.
    pub now: UnixMillis,
}

/// The health-points programme.
pub fn health() -> ProgramId {
    #[allow(clippy::expect_used)]
    ProgramId::parse("health").expect("valid id")
}

/// The volunteer-points programme.
pub fn volunteer() -> ProgramId {
    #[allow(clippy::expect_used)]
    ProgramId::parse("volunteer").expect("valid id")
}

impl World {
    /// Builds the world under `root` (which must not hold a hub yet).
    pub fn create(root: &Path, start: UnixMillis) -> Result<World> {
        let now = start;
        let mut hub = Hub::init(&root.join("hub")).context("init hub")?;
        let m = bunkyo();
        hub.add_municipality(m, "Bunkyo-ku", now)?;
        let day_ms = 24 * 3600 * 1000;
        let valid_until = now.plus_ms(365 * day_ms);
        let specs: [(&'static str, &str, FacilityKind, Vec<OpKind>); 3] = [
            (
                "library",
                "bunkyo-lib",
                FacilityKind::Library,
                vec![OpKind::Link, OpKind::Unlink],
            ),
            (
                "community centre",
                "bunkyo-cc",
                FacilityKind::CommunityCentre,
                vec![OpKind::Grant, OpKind::Redeem, OpKind::Link],
            ),
            (
                "festival stall",
                "fest-stall-1",
                FacilityKind::Stall,
                vec![OpKind::Redeem],
            ),
        ];
        let mut sites = Vec::new();
        for (name, id, kind, ops) in specs {
            let facility = FacilityId::parse(id)?;
            hub.add_facility(
                &Facility {
                    id: facility.clone(),
                    municipality: m,
                    kind,
                    name: name.to_owned(),
                },
                now,
            )?;
            let dir = root.join(id);
            let node = DataDir::new(&dir).init(&NodeConfig {
                hub_key: hub.hub_id().to_string(),
                hub_addr: None,
            })?;
            let policy = NodePolicy {
                allowed_ops: ops,
                per_card_offline_limit: pts(3000),
                node_exposure_limit: pts(20_000),
                offline_voucher_cap: pts(20_000),
                pin_threshold: pts(2000),
                valid_until,
            };
            hub.enrol_node(node.id(), &facility, policy.clone(), now)?;
            sites.push(Site {
                name,
                facility,
                node,
                dir,
                policy,
            });
        }
        hub.create_program(&health(), m, pts(1_000_000), now)?;
        hub.create_program(&volunteer(), m, pts(100_000), now)?;
        let mut holders = Vec::new();
        for (i, alias) in ["Hanako", "Taro", "Jiro"].into_iter().enumerate() {
            let my_key_id = MyKeyId::parse(alias)?;
            let card = card(0x1000 + i as u32);
            let account = hub.register_account(&my_key_id, m, &card, now)?;
            holders.push(Holder {
                my_key_id,
                card,
                account,
            });
        }
        Ok(World {
            hub,
            sites,
            holders,
            now,
        })
    }

    /// Advances the virtual clock.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
    }

    /// Syncs one site with the hub.
    pub fn sync(&mut self, site: usize) -> Result<SyncReport> {
        let now = self.now;
        harness::sync(&mut self.sites[site].node, &mut self.hub, now)
    }

    /// Syncs every site, in order.
    pub fn sync_all(&mut self) -> Result<SyncReport> {
        let mut total = SyncReport::default();
        for i in 0..self.sites.len() {
            let r = self.sync(i)?;
            total.requests += r.requests;
            total.bytes_up += r.bytes_up;
            total.bytes_down += r.bytes_down;
            total.receipts += r.receipts;
            total.rejected += r.rejected;
            total.facts += r.facts;
        }
        Ok(total)
    }
}
