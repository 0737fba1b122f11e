//! The card proof through the node's real card path, with the virtual JPKI
//! card in process (`mykey_tests::card::InProcessCard`): the certificate is
//! read over APDUs and chained to the test CA, the card signs the binding of
//! exactly the redeem the node then signs, and the proof the redeem carries
//! verifies with the card's public key for that transaction only.

use mykey_node::OpError;
use mykey_node::card::{Pin, ProveError, prove_redeem, read_auth_cert, trust};
use mykey_node::rules::Decline;
use mykey_sync_proto::{MyKeyId, RedeemBinding, TxBody, UnixMillis};
use mykey_testcard::{TestCa, TestCard, key_from_seed};
use mykey_tests::card::InProcessCard;
use mykey_tests::world::{World, bunkyo, health, pts};
use rsa::RsaPublicKey;

const STALL: usize = 2;

#[test]
fn a_redeem_above_the_threshold_carries_a_proof_bound_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let start = UnixMillis(1_775_001_600_000);
    let mut w = World::create(dir.path(), start).unwrap();
    let now_unix = (start.0 / 1000) as i64;

    let ca = TestCa::new(
        key_from_seed([1; 32]).unwrap(),
        "MyKey Test JPKI User Authentication CA",
        now_unix - 86_400,
        now_unix + 10 * 365 * 86_400,
    )
    .unwrap();
    let card_key = key_from_seed([2; 32]).unwrap();
    let cert_der = ca
        .issue(
            &[0x0A, 0x1B, 0x2C],
            &RsaPublicKey::from(&card_key),
            now_unix - 86_400,
            now_unix + 5 * 365 * 86_400,
        )
        .unwrap();
    let mut card = TestCard::new(cert_der, ca.cert_der().to_vec(), card_key, *b"4321");

    // Register the card with its certificate (the hub keeps its key for
    // card proofs) and fund the wallet.
    let cert = read_auth_cert(&mut InProcessCard(&mut card)).unwrap();
    let key = cert.card_key().clone();
    let trusted = trust(cert, &[ca.cert_der().to_vec()], now_unix).unwrap();
    let akiko = w
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Akiko").unwrap(),
            bunkyo(),
            &trusted,
            w.now,
        )
        .unwrap();
    w.hub
        .admin_grant(akiko, &health(), pts(5000), w.now)
        .unwrap();
    w.sync(STALL).unwrap();
    let node = &mut w.sites[STALL].node;

    // A wrong PIN: no proof, a try spent; the node refuses above the threshold.
    let binding = node.redeem_binding(&key, pts(2500), w.now).unwrap();
    let err = prove_redeem(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("1111").unwrap(),
        binding,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProveError::WrongPin { tries_left: 2 }),
        "{err}"
    );
    let err = node.redeem(&key, pts(2500), None, w.now).unwrap_err();
    assert!(
        matches!(err, OpError::Declined(Decline::PinRequired { .. })),
        "{err}"
    );

    // The right PIN: the card signs this redeem's binding.
    let binding = node.redeem_binding(&key, pts(2500), w.now).unwrap();
    let proof = prove_redeem(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        binding.clone(),
    )
    .unwrap();
    assert_eq!(card.tries_left(), 3, "a right PIN resets the counter");
    // The proof is for 2,500 pt at this seq: not for another amount.
    let err = node
        .redeem(&key, pts(2400), Some(&proof), w.now)
        .unwrap_err();
    assert!(matches!(err, OpError::ProofNotForThis), "{err}");
    let done = node.redeem(&key, pts(2500), Some(&proof), w.now).unwrap();

    let signed = node.outbox_from(done.seq, 1).unwrap().remove(0);
    let verified = signed.verify().unwrap();
    let TxBody::Redeem(r) = &verified.payload().body else {
        panic!("not a redeem");
    };
    let sig = r.card_proof.clone().expect("the redeem carries the proof");
    let bound = RedeemBinding::of(verified.payload()).unwrap();
    assert_eq!(bound, binding);
    let public = trusted.cert().public_key_der().to_vec();
    mykey_jpki::verify_redeem_proof(&public, &bound, &sig).unwrap();
    // The same signature on another transaction (next seq) does not verify,
    // nor with another card's key.
    let other = RedeemBinding {
        seq: bound.seq + 1,
        ..bound.clone()
    };
    assert!(mykey_jpki::verify_redeem_proof(&public, &other, &sig).is_err());
    let stranger = mykey_jpki::CardCert::from_der(
        ca.issue(
            &[9],
            &RsaPublicKey::from(&key_from_seed([3; 32]).unwrap()),
            now_unix - 86_400,
            now_unix + 86_400,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(mykey_jpki::verify_redeem_proof(stranger.public_key_der(), &bound, &sig).is_err());

    // The hub verifies the proof with the registered key and pays it.
    w.sync(STALL).unwrap();
    assert_eq!(w.hub.balance(akiko, bunkyo()).unwrap().balance, pts(2500));
}
