//! fuzz-seeds: writes the fuzzers' seed inputs from real traffic, so the
//! corpora can be made again whenever a format changes.
//!
//! A hub and three nodes of Bunkyo-ku (the demo's world) live through a
//! short day: registrations, grants, a link, offline redeems and a double
//! spend, a suspension, a forged transaction. Every request and answer
//! that crosses the in-process link is kept as bytes, and from them the
//! transactions, facts, shard sync messages, shard documents and frames.
//! The virtual JPKI card (`vjpki`'s logic, with certificates from the
//! `openssl` CLI) answers the node's card reads and PIN proofs, and signs a
//! redeem's binding (the hub's proof check). An operator exchange request, a
//! bank table and a self-check machine's SIP2 session complete the set.
//!
//! Each target's seeds go to `fuzz/corpus/<target>/seed-<hash>` (earlier
//! `seed-*` files are removed first; what the fuzzers added stays). Then
//! minimise: `cd fuzz && cargo fuzz cmin -s none <target>` (fuzz/README.md).

use anyhow::{Context, Result, bail};
use clap::Parser;
use ed25519_dalek::Signer;
use mykey_cache::{ShardDoc, SyncState};
use mykey_fuzz_harness::{bank, card, exchange, frame, shard, tx};
use mykey_hub::economy::exchange::{ExchangeRequest, OperatorId, SignedExchange};
use mykey_node::card::apdu::{Apdu, Response as CardResponse};
use mykey_node::card::jpki::{self, Challenge};
use mykey_node::card::{CardChannel, Pin, TransmitError};
use mykey_node::net::lan::{LanRequest, LanResponse};
use mykey_sync_proto::codec;
use mykey_sync_proto::shard::{ShardHead, placement};
use mykey_sync_proto::wire::{Request, Response};
use mykey_sync_proto::{FacilityCardNumber, SignedTx, TxBody, TxId, UnixMillis};
use mykey_testcard::{MAX_TRIES, TestCard};
use mykey_tests::harness::sync_observed;
use mykey_tests::vcard::gen_certs;
use mykey_tests::world::{World, health, pts, volunteer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Writes the fuzz seeds from real traffic.
#[derive(Parser)]
#[command(name = "fuzz-seeds", about)]
struct Args {
    /// The corpus root (one directory per target).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus"))]
    out: PathBuf,
}

/// Seeds per target, deduplicated.
#[derive(Default)]
struct Seeds(BTreeMap<&'static str, BTreeSet<Vec<u8>>>);

impl Seeds {
    fn add(&mut self, target: &'static str, bytes: Vec<u8>) {
        assert!(
            mykey_fuzz_harness::target(target).is_some(),
            "no target {target}"
        );
        self.0.entry(target).or_default().insert(bytes);
    }

    fn write(&self, root: &Path) -> Result<()> {
        for (target, seeds) in &self.0 {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir)?;
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
                {
                    std::fs::remove_file(&p)?;
                }
            }
            for s in seeds {
                let name = format!("seed-{}", &TxId::hash_of(s).to_string()[..16]);
                std::fs::write(dir.join(name), s)?;
            }
            println!("{target:<14} {} seeds", seeds.len());
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut seeds = Seeds::default();
    traffic(&mut seeds)?;
    cards(&mut seeds)?;
    operator_and_banks(&mut seeds);
    sip2(&mut seeds);
    for line in mykey_fuzz_harness::voucher::seeds() {
        seeds.add("voucher_text", line);
    }
    seeds.write(&args.out)?;
    Ok(())
}

/// The day's wire traffic, and what it carries.
fn traffic(seeds: &mut Seeds) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut w = World::create(dir.path(), UnixMillis(1_764_000_000_000))?;
    let hub_id = w.hub.hub_id();
    let mut exchanges: Vec<(Vec<u8>, Vec<u8>)> = vec![];
    let sync = |w: &mut World, site: usize, exchanges: &mut Vec<(Vec<u8>, Vec<u8>)>| {
        let now = w.now;
        sync_observed(
            &mut w.sites[site].node,
            &mut w.hub,
            now,
            |_| false,
            |up, down| exchanges.push((up.to_vec(), down.to_vec())),
        )
    };
    let cards: Vec<_> = w.holders.iter().map(|h| h.card.clone()).collect();
    let (hanako, jiro) = (w.holders[0].account, w.holders[2].account);
    w.hub.admin_grant(hanako, &health(), pts(3000), w.now)?;
    w.hub.admin_grant(jiro, &health(), pts(800), w.now)?;
    for site in 0..3 {
        sync(&mut w, site, &mut exchanges)?;
    }
    w.sites[0]
        .node
        .link(&cards[0], FacilityCardNumber::parse("LIB-0001")?, w.now)?;
    w.sites[1]
        .node
        .grant(&cards[1], volunteer(), pts(500), w.now)?;
    for site in 0..3 {
        sync(&mut w, site, &mut exchanges)?;
    }
    w.advance_ms(8 * 3600 * 1000);
    w.sites[2].node.redeem(&cards[0], pts(1900), None, w.now)?;
    w.sites[1].node.redeem(&cards[0], pts(1800), None, w.now)?;
    w.sites[2].node.redeem(&cards[2], pts(600), None, w.now)?;
    w.advance_ms(60_000);
    for site in [2, 1, 0, 2, 1, 0] {
        sync(&mut w, site, &mut exchanges)?;
    }
    w.hub.suspend_card(&cards[1], w.now)?;
    sync(&mut w, 2, &mut exchanges)?;

    // A forged transaction: a genuine signature over other points.
    let stolen = w.sites[2].node.outbox_from(1, 1)?;
    let first = stolen.first().context("the stall signed a transaction")?;
    let mut payload = first.verify()?.payload().clone();
    if let TxBody::Redeem(r) = &mut payload.body {
        r.points = pts(19_000);
    }
    let forged = SignedTx::from_raw_parts(codec::encode(&payload), first.signature_bytes());
    seeds.add("signed_tx", forged.to_bytes());

    seeds.add("lan_message", LanResponse::Ack { have_through: 3 }.encode());
    seeds.add(
        "lan_message",
        LanResponse::Refused("not a connected LAN peer".into()).encode(),
    );
    if exchanges.is_empty() {
        bail!("the day exchanged no messages");
    }
    let mut heads: BTreeMap<String, ShardHead> = BTreeMap::new();
    let mut node_docs: BTreeMap<String, ShardDoc> = BTreeMap::new();
    for (up, down) in &exchanges {
        seeds.add("wire_request", up.clone());
        seeds.add("wire_response", down.clone());
        let req = Request::decode(up)?;
        let resp = Response::decode(down)?;
        if let Request::Push(p) = &req {
            for t in &p.txs {
                seeds.add("signed_tx", t.to_bytes());
                seeds.add("signed_tx", t.payload_bytes().to_vec());
            }
            // A LAN peer offers its chain the same way.
            let offer = LanRequest::Offer { txs: p.txs.clone() };
            seeds.add("lan_message", offer.encode());
        }
        if let Request::ShardSync(s) = &req {
            seeds.add("lan_message", LanRequest::ShardSync(s.clone()).encode());
            if let Some(m) = &s.message {
                seeds.add("shard_read", shard::input(3, &hub_id, 1, &s.shard, m));
            }
        }
        match &resp {
            Response::Facts(f) => {
                for fact in &f.facts {
                    seeds.add("signed_fact", tx::fact_input(&hub_id, fact));
                    let v = fact.verify(&hub_id)?;
                    seeds.add("signed_fact", tx::fact_payload_input(&hub_id, v.payload()));
                }
            }
            Response::Shards(list) => {
                for h in &list.shards {
                    heads.insert(h.shard.to_string(), h.clone());
                }
            }
            Response::ShardSync(s) => {
                seeds.add("lan_message", LanResponse::ShardSync(s.clone()).encode());
                let buckets = heads.get(&s.shard.to_string()).map_or(1, |h| h.buckets);
                if let Some(m) = &s.message {
                    seeds.add("shard_read", shard::input(0, &hub_id, buckets, &s.shard, m));
                    let doc = node_docs.entry(s.shard.to_string()).or_default();
                    let _ = doc.receive(&mut SyncState::new(), m);
                }
            }
            _ => {}
        }
    }
    for (name, doc) in &mut node_docs {
        let head = &heads[name];
        seeds.add(
            "shard_read",
            shard::input(1, &hub_id, head.buckets, &head.shard, &doc.save()),
        );
    }
    // Every fact a node receives, as items of the shards they belong to.
    for site in &w.sites {
        let facts = w.hub.received_facts(&site.node.id(), 0, 2000)?;
        let mut by_shard: BTreeMap<String, (ShardHead, Vec<(String, _)>)> = BTreeMap::new();
        for f in &facts.facts {
            seeds.add("signed_fact", tx::fact_input(&hub_id, f));
            let v = f.verify(&hub_id)?;
            if let Some((s, k)) = placement(v.payload(), 1) {
                let head = ShardHead {
                    shard: s.clone(),
                    epoch: 0,
                    buckets: 1,
                    last_seq: 0,
                };
                let e = by_shard
                    .entry(s.to_string())
                    .or_insert_with(|| (head, vec![]));
                e.1.push((k.as_str().to_owned(), v.payload().clone()));
            }
        }
        for (head, items) in by_shard.values() {
            let refs: Vec<(&str, _)> = items.iter().map(|(k, p)| (k.as_str(), p)).collect();
            seeds.add(
                "shard_read",
                shard::input(2, &hub_id, 1, &head.shard, &shard::items(&refs)),
            );
        }
    }
    // Frames: the first requests and answers, read at several step sizes.
    let messages: Vec<Vec<u8>> = exchanges
        .iter()
        .take(4)
        .flat_map(|(u, d)| [u.clone(), d.clone()])
        .collect();
    for step in [0, 6, 63] {
        seeds.add("net_frame", frame::input(step, &messages));
    }
    seeds.add("net_frame", frame::input(0, &[vec![]]));
    let mut oversized = vec![0];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    seeds.add("net_frame", oversized);
    Ok(())
}

/// A `CardChannel` to the virtual card that keeps every answer.
struct Recorder {
    card: TestCard,
    answers: Vec<Vec<u8>>,
}

impl CardChannel for Recorder {
    fn transmit(&mut self, apdu: &Apdu) -> Result<CardResponse, TransmitError> {
        let raw = self.card.answer(&apdu.encode());
        self.answers.push(raw.clone());
        CardResponse::parse(&raw).ok_or(TransmitError::ShortResponse(raw.len()))
    }
}

/// The virtual card's answers to the node's reads and proofs.
fn cards(seeds: &mut Seeds) -> Result<()> {
    use rsa::pkcs8::DecodePrivateKey;
    let dir = tempfile::tempdir()?;
    gen_certs(
        dir.path(),
        "0A1B2C3D4E5F",
        "MyKey Test JPKI User Authentication CA",
        false,
    )?;
    let read = |n: &str| std::fs::read(dir.path().join(n)).with_context(|| n.to_owned());
    let (auth, ca) = (read("auth.der")?, read("ca.der")?);
    let key_pem = std::fs::read_to_string(dir.path().join("auth.key.pem"))?;
    let pin: [u8; 4] = card::PIN.as_bytes().try_into()?;
    // (flags, PIN the card holds, tries left, a JPKI card)
    let cases = [
        (7u8, pin, MAX_TRIES, true),
        (7, *b"9999", MAX_TRIES, true),
        (7, pin, 0, true),
        (2, pin, 1, true),
        (0, pin, MAX_TRIES, false),
    ];
    for (flags, card_pin, tries, jpki) in cases {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem)?;
        let mut rec = Recorder {
            card: {
                let c = TestCard::new(auth.clone(), ca.clone(), key, card_pin).with_tries(tries);
                if jpki { c } else { c.not_jpki() }
            },
            answers: vec![],
        };
        let cert = jpki::read_auth_cert(&mut rec).ok();
        if flags & 1 != 0 {
            let _ = jpki::read_auth_ca_cert_der(&mut rec);
        }
        if flags & 2 != 0 {
            let _ = jpki::pin_status(&mut rec);
        }
        if flags & 4 != 0
            && let Some(cert) = &cert
        {
            let p = Pin::parse(card::PIN)?;
            let _ = jpki::prove(&mut rec, cert, p, Challenge::from_bytes(card::CHALLENGE));
        }
        seeds.add("card_answers", card::answers_input(flags, &rec.answers));
    }
    let cert = mykey_node::card::CardCert::from_der(auth.clone())?;
    // The hub's check of a redeem's PIN proof: the card signs the redeem's
    // binding; the same proof on another redeem, and one by another key.
    let node_key = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
    let node = mykey_fuzz_harness::tx::id_of(&node_key);
    let mut redeem = mykey_sync_proto::Redeem {
        card: cert.card_key().clone(),
        account: mykey_sync_proto::AccountId::new(1)?,
        municipality: mykey_sync_proto::MunicipalityCode::parse("131059")?,
        points: pts(2500),
        merchant: mykey_sync_proto::FacilityId::parse("fest-stall-1")?,
        basis: None,
        card_proof: None,
    };
    let created_at = UnixMillis(1_764_000_000_000);
    let binding = mykey_sync_proto::RedeemBinding::new(node, 7, created_at, &redeem);
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem)?;
    let mut rec = Recorder {
        card: TestCard::new(auth.clone(), ca.clone(), key, pin).with_tries(MAX_TRIES),
        answers: vec![],
    };
    jpki::read_auth_cert(&mut rec)?;
    let proof = jpki::prove(
        &mut rec,
        &cert,
        Pin::parse(card::PIN)?,
        Challenge::from_bytes(binding.challenge()),
    )?;
    redeem.card_proof = Some(mykey_sync_proto::CardSignature::new(
        proof.signature().to_vec(),
    )?);
    for (seq, points) in [(7, 2500), (8, 2500), (7, 25)] {
        let mut r = redeem.clone();
        r.points = pts(points);
        let tx = SignedTx::sign(
            &mykey_sync_proto::TxPayload {
                node,
                seq,
                prev_hash: TxId::GENESIS,
                created_at,
                body: TxBody::Redeem(r),
            },
            &node_key,
        );
        seeds.add("card_proof", card::proof_input(cert.public_key_der(), &tx));
        if seq == 8 {
            seeds.add("card_proof", card::proof_input(&ca, &tx));
        }
    }
    let inside = cert.not_before_unix() + 60;
    seeds.add("card_cert", card::cert_input(inside, &auth, &ca));
    seeds.add(
        "card_cert",
        card::cert_input(cert.not_after_unix() + 1, &auth, &ca),
    );
    seeds.add("card_cert", card::cert_input(inside, &ca, &auth));
    Ok(())
}

/// What a self-check machine and a library system say (SIP2 2.00): a
/// session as the bridge's tests play it, in both character sets.
fn sip2(seeds: &mut Seeds) {
    let frames: [&[u8]; 12] = [
        b"9300CNsc-1|COsecret|CPlib|",
        b"9900302.00",
        b"98YYYNYN01000320261203    1200002.00AOlib|AMLibrary|BXYYYYYYYYYYYYYYYY|",
        b"2300120261203    120000AOlib|AAMYKEY|AC|AD|",
        b"24              00120261203    120000AOlib|AALIB-0042|AEHanako Yamada|BLY|",
        b"11YN20261203    120000                  AOlib|AAMYKEY|ABitem-1|AC|",
        b"121NNY20261203    120000AOlib|AALIB-0042|ABitem-1|AJ\x82\xa0Title|AH20261217|",
        b"09N20261203    12000020261203    120000APx|AOlib|ABitem-1|AC|",
        b"6300120261203    120000          AOlib|AAMYKEY|AC|",
        b"3520261203    120000AOlib|AAMYKEY|",
        b"36Y20261203    120000AOlib|AALIB-0042|AFThank you|",
        b"96",
    ];
    // As sent, and as a peer that adds sequence numbers and checksums sends them.
    let mut summed: Vec<Vec<u8>> = vec![];
    for (i, f) in frames.iter().enumerate() {
        if let Some(wire) = mykey_fuzz_harness::sip2::with_checksum(f, (i % 10) as u8) {
            summed.push(wire);
        }
    }
    let summed: Vec<&[u8]> = summed.iter().map(Vec::as_slice).collect();
    for set in [&frames[..], &summed[..]] {
        seeds.add("sip2_codec", sip2_input(0, set));
        seeds.add("sip2_codec", sip2_input(5, &set[..6.min(set.len())]));
        for f in set {
            seeds.add("sip2_codec", sip2_input(0, &[f]));
        }
    }
    let crlf: Vec<u8> = b"\x019900302.00\r\n9900302.00\r".to_vec();
    seeds.add("sip2_codec", crlf);
}

fn sip2_input(step: u8, frames: &[&[u8]]) -> Vec<u8> {
    mykey_fuzz_harness::sip2::codec_input(step, frames)
}

/// An operator's exchange request and a zengin-code bank table.
fn operator_and_banks(seeds: &mut Seeds) {
    let key = exchange::operator_key();
    #[allow(clippy::expect_used)]
    let op = OperatorId::parse(exchange::OPERATOR).expect("a valid operator id");
    for (request_id, points, municipality) in [
        ("tx-0001", 1000, None),
        ("tx-0002", 7, Some("131059")),
        ("tx-0003", 1, Some("011002")),
    ] {
        let req = ExchangeRequest {
            request_id: request_id.into(),
            my_key_id: "hanako".into(),
            operator_points: points,
            municipality: municipality.map(str::to_owned),
            requested_at: 1_764_000_000_000,
            donate_to: None,
        };
        let signed = SignedExchange::sign(&op, &req, &key);
        let sig = hex::encode(signed.signature);
        for knobs in [0u8, 0x11, 0x06] {
            seeds.add(
                "exchange_body",
                exchange::input(exchange::OPERATOR, &sig, knobs, &signed.body),
            );
        }
    }
    let wrong = hex::encode(key.sign(b"other bytes").to_bytes());
    seeds.add(
        "exchange_body",
        exchange::input(
            "card-x",
            &wrong,
            0,
            br#"{"request_id": "tx-9", "my_key_id": "hanako", "operator_points": 10, "requested_at": 1}"#,
        ),
    );
    seeds.add(
        "bank_data",
        bank::input(
            r#"{"0009":{"code":"0009","name":"三井住友","kana":"ミツイスミトモ","hira":"みついすみとも","roma":"mitsuisumitomo"},"0001":{"code":"0001","name":"みずほ","kana":"ミズホ"}}"#,
            r#"{"001":{"code":"001","name":"神保町","kana":"ジンボウチヨウ","hira":"じんぼうちよう","roma":"jinboucho"},"004":{"kana":"マルノウチチユウオウ"}}"#,
        ),
    );
    seeds.add(
        "bank_data",
        bank::input(
            r#"{"0005":{"kana":"ミツビシユ－エフジエイ"}}"#,
            r#"{"002":{"kana":"マルノウチ"}}"#,
        ),
    );
}
