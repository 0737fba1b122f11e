//! The kiosk's screen as a pure state machine (issue 19, the core of
//! `mykey-node kiosk`; the driver around it is [`super::reader`] and
//! [`super::page`]).
//!
//! Inputs are the reader's events (a card in, the card out), the on-screen
//! keypad's keys and the answer to an action the core asked for; the output
//! is at most one [`Effect`] per input, which the driver performs (the card
//! signs the hub's challenge, the hub or the node's store is read) and
//! answers with [`Input::Answer`] carrying the [`Generation`] it was asked
//! under. Every card in or out starts a new generation, so an answer that
//! arrives after its card was pulled is dropped: nothing of a pulled
//! card's history reaches the screen, and the screen clears at once.
//!
//! The PIN lives only in the keypad's buffer, wiped when it is handed over
//! and whenever the card leaves; the screen shows how many digits were
//! typed, never which.

use crate::card::Pin;
use mykey_sync_proto::holder::{HolderHistory, HolderRefusal};
use mykey_sync_proto::{AccountId, CardKey, MunicipalityCode, MyKeyId, Points, UnixMillis};
use zeroize::Zeroizing;

/// Digits of a JPKI user-authentication PIN.
pub const PIN_DIGITS: usize = 4;

/// Which card's turn an action belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation(pub u64);

/// What the node itself holds for a card, shown when the hub is not
/// reachable ("offline"): the hub's last confirmed balance and expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineView {
    /// The holder's account.
    pub account: AccountId,
    /// The holder's alias, as the node last learnt it.
    pub my_key_id: Option<MyKeyId>,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The hub's last confirmed balance.
    pub balance: Points,
    /// Debt, as last confirmed.
    pub debt: Points,
    /// Spends this node and its peers made that the hub has not confirmed.
    pub pending: Points,
    /// The earliest-expiring points and when, as the hub last said.
    pub expiry: Option<(Points, UnixMillis)>,
}

/// What an action came to.
#[derive(Debug)]
pub enum Outcome {
    /// The hub answered with the holder's history.
    History(Box<HolderHistory>),
    /// The hub was not reachable; this is what the node holds.
    Offline(OfflineView),
    /// The hub refused.
    Refused(HolderRefusal),
    /// The card refused the PIN; tries left.
    WrongPin(u8),
    /// The card's PIN is locked (three wrong tries).
    Locked,
    /// The card is not registered (nothing online, nothing on the node).
    NotRegistered,
    /// The card or the reader failed mid-action: tap again.
    CardFailed,
}

/// What the screen shows.
#[derive(Debug, PartialEq, Eq)]
pub enum Screen {
    /// Waiting for a card.
    Idle,
    /// A card is present: the keypad, with the number of digits typed and
    /// what went wrong last.
    Pin {
        /// Digits typed so far.
        typed: usize,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// The card signs and the hub is asked.
    Working,
    /// The history from the hub.
    Online(Box<HolderHistory>),
    /// What the node holds, marked offline.
    Offline(OfflineView),
    /// A message until the card leaves.
    Message(Notice),
}

/// A problem said on the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Fewer than [`PIN_DIGITS`] digits.
    ShortPin,
    /// The card refused the PIN.
    WrongPin {
        /// Tries left before the card locks.
        tries_left: u8,
    },
    /// The card's PIN is locked: a municipal counter resets it.
    Locked,
    /// The card is not registered.
    NotRegistered,
    /// The hub refused.
    Refused(HolderRefusal),
    /// The card or reader failed: tap again.
    CardFailed,
}

/// What the driver is asked to do.
#[derive(Debug)]
pub enum Effect {
    /// Have `card` sign the hub's challenge with `pin` and read the
    /// history (or, offline, what the node holds); answer under `generation`.
    Read {
        /// The turn this belongs to.
        generation: Generation,
        /// The card on the reader.
        card: CardKey,
        /// The PIN typed.
        pin: Pin,
    },
}

/// A reader event, a key or an answer.
#[derive(Debug)]
pub enum Input {
    /// A card was put on the reader (its key read from its certificate).
    CardIn(CardKey),
    /// The card left the reader.
    CardOut,
    /// A keypad digit (0-9).
    Digit(u8),
    /// The keypad's back key.
    Back,
    /// The keypad's OK key.
    Submit,
    /// An action's result.
    Answer(Generation, Outcome),
}

/// The kiosk's state: the screen, the card and the keypad buffer.
#[derive(Debug)]
pub struct Kiosk {
    screen: Screen,
    card: Option<CardKey>,
    entry: Zeroizing<Vec<u8>>,
    generation: Generation,
}

impl Default for Kiosk {
    fn default() -> Self {
        Kiosk {
            screen: Screen::Idle,
            card: None,
            entry: Zeroizing::new(Vec::with_capacity(PIN_DIGITS)),
            generation: Generation(0),
        }
    }
}

impl Kiosk {
    /// What the screen shows now.
    pub fn screen(&self) -> &Screen {
        &self.screen
    }

    /// The current turn.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Takes one input; returns what the driver must do, if anything.
    pub fn step(&mut self, input: Input) -> Option<Effect> {
        match input {
            Input::CardIn(card) => {
                self.next_turn();
                self.card = Some(card);
                self.screen = Screen::Pin {
                    typed: 0,
                    notice: None,
                };
                None
            }
            Input::CardOut => {
                self.next_turn();
                self.card = None;
                self.screen = Screen::Idle;
                None
            }
            Input::Digit(d) => {
                if let Screen::Pin { typed, notice } = &mut self.screen
                    && d <= 9
                    && self.entry.len() < PIN_DIGITS
                {
                    self.entry.push(b'0' + d);
                    *typed = self.entry.len();
                    *notice = None;
                }
                None
            }
            Input::Back => {
                if let Screen::Pin { typed, .. } = &mut self.screen {
                    self.entry.pop();
                    *typed = self.entry.len();
                }
                None
            }
            Input::Submit => self.submit(),
            Input::Answer(generation, outcome) => {
                if generation == self.generation && self.screen == Screen::Working {
                    self.answer(outcome);
                }
                None
            }
        }
    }

    fn next_turn(&mut self) {
        self.generation = Generation(self.generation.0 + 1);
        self.entry.clear();
    }

    fn submit(&mut self) -> Option<Effect> {
        let (Screen::Pin { typed, notice }, Some(card)) = (&mut self.screen, &self.card) else {
            return None;
        };
        // The buffer holds ASCII digits only, so it is text.
        let pin = std::str::from_utf8(&self.entry)
            .ok()
            .and_then(|t| Pin::parse(t).ok());
        let Some(pin) = pin else {
            *notice = Some(Notice::ShortPin);
            return None;
        };
        *typed = 0;
        let card = card.clone();
        self.entry.clear();
        self.screen = Screen::Working;
        Some(Effect::Read {
            generation: self.generation,
            card,
            pin,
        })
    }

    fn answer(&mut self, outcome: Outcome) {
        let again = |notice| Screen::Pin {
            typed: 0,
            notice: Some(notice),
        };
        self.screen = match outcome {
            Outcome::History(h) => Screen::Online(h),
            Outcome::Offline(v) => Screen::Offline(v),
            Outcome::WrongPin(tries_left) => again(Notice::WrongPin { tries_left }),
            Outcome::CardFailed => again(Notice::CardFailed),
            Outcome::Locked => Screen::Message(Notice::Locked),
            Outcome::NotRegistered => Screen::Message(Notice::NotRegistered),
            Outcome::Refused(r) => Screen::Message(Notice::Refused(r)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CardKey {
        CardKey::new(vec![0x30, 1], vec![7]).unwrap()
    }

    fn history() -> HolderHistory {
        HolderHistory {
            account: AccountId::new(2).unwrap(),
            my_key_id: MyKeyId::parse("Akiko").unwrap(),
            as_of: UnixMillis(1),
            balances: vec![],
            entries: vec![],
            more: false,
        }
    }

    fn offline() -> OfflineView {
        OfflineView {
            account: AccountId::new(2).unwrap(),
            my_key_id: None,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            balance: Points::new(500).unwrap(),
            debt: Points::ZERO,
            pending: Points::ZERO,
            expiry: None,
        }
    }

    /// A kiosk with the card in and `pin` typed and submitted.
    fn submitted(pin: &[u8]) -> (Kiosk, Option<Effect>) {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(card()));
        for d in pin {
            k.step(Input::Digit(*d));
        }
        let e = k.step(Input::Submit);
        (k, e)
    }

    #[test]
    fn a_full_pin_asks_for_a_read_and_wipes_the_buffer() {
        let (k, e) = submitted(&[4, 3, 2, 1]);
        let Some(Effect::Read {
            generation,
            card: c,
            ..
        }) = e
        else {
            panic!("expected a read, got {e:?}")
        };
        assert_eq!((generation, c), (k.generation(), card()));
        assert_eq!(k.screen(), &Screen::Working);
        assert!(k.entry.is_empty());
    }

    #[test]
    fn the_keypad_takes_four_digits_and_says_a_short_pin() {
        let (k, e) = submitted(&[4, 3]);
        assert!(e.is_none());
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 2,
                notice: Some(Notice::ShortPin)
            }
        );
        let mut k = Kiosk::default();
        k.step(Input::CardIn(card()));
        for d in [1, 2, 3, 4, 5, 10] {
            k.step(Input::Digit(d));
        }
        k.step(Input::Back);
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 3,
                notice: None
            }
        );
        // No card: keys do nothing.
        let mut idle = Kiosk::default();
        idle.step(Input::Digit(1));
        assert!(idle.step(Input::Submit).is_none());
        assert_eq!(idle.screen(), &Screen::Idle);
    }

    #[test]
    fn answers_become_screens() {
        let cases: Vec<(Outcome, Screen)> = vec![
            (
                Outcome::History(Box::new(history())),
                Screen::Online(Box::new(history())),
            ),
            (Outcome::Offline(offline()), Screen::Offline(offline())),
            (
                Outcome::WrongPin(2),
                Screen::Pin {
                    typed: 0,
                    notice: Some(Notice::WrongPin { tries_left: 2 }),
                },
            ),
            (Outcome::Locked, Screen::Message(Notice::Locked)),
            (
                Outcome::NotRegistered,
                Screen::Message(Notice::NotRegistered),
            ),
            (
                Outcome::Refused(HolderRefusal::CardNotActive),
                Screen::Message(Notice::Refused(HolderRefusal::CardNotActive)),
            ),
            (
                Outcome::CardFailed,
                Screen::Pin {
                    typed: 0,
                    notice: Some(Notice::CardFailed),
                },
            ),
        ];
        for (outcome, want) in cases {
            let (mut k, _) = submitted(&[4, 3, 2, 1]);
            let g = k.generation();
            k.step(Input::Answer(g, outcome));
            assert_eq!(k.screen(), &want);
        }
    }

    #[test]
    fn a_card_pulled_mid_action_clears_the_screen_and_its_answer_is_dropped() {
        let (mut k, _) = submitted(&[4, 3, 2, 1]);
        let asked = k.generation();
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
        k.step(Input::Answer(asked, Outcome::History(Box::new(history()))));
        assert_eq!(k.screen(), &Screen::Idle, "a pulled card's answer shows");
        // Even when the same card comes back before the answer does.
        k.step(Input::CardIn(card()));
        k.step(Input::Answer(asked, Outcome::History(Box::new(history()))));
        assert!(matches!(k.screen(), Screen::Pin { .. }), "{:?}", k.screen());
        // Nor when the next holder is already waiting for their own answer:
        // the first holder's history never shows to the second.
        for d in [1, 2, 3, 4] {
            k.step(Input::Digit(d));
        }
        assert!(k.step(Input::Submit).is_some());
        k.step(Input::Answer(asked, Outcome::History(Box::new(history()))));
        assert_eq!(k.screen(), &Screen::Working);
    }

    #[test]
    fn the_card_leaving_clears_the_history_and_the_keypad() {
        let (mut k, _) = submitted(&[4, 3, 2, 1]);
        let g = k.generation();
        k.step(Input::Answer(g, Outcome::History(Box::new(history()))));
        assert!(matches!(k.screen(), Screen::Online(_)));
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
        let mut k = Kiosk::default();
        k.step(Input::CardIn(card()));
        k.step(Input::Digit(4));
        k.step(Input::CardOut);
        assert!(k.entry.is_empty(), "the typed digit outlived the card");
    }
}
