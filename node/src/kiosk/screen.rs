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
//!
//! A card in shows a menu: read one's points, or register / change one's
//! My Key ID (typed on the on-screen keyboard, checked against the ID
//! rules before the PIN is asked). An order ends on a receipt (done, or
//! pending when the hub is away and the signed order waits in the queue).
//!
//! A holder registered here may donate: choose one of the municipality's
//! open donation programmes (as the hub last told the node, so offline
//! too), type the points on the keypad, then the PIN; the card signs that
//! very donation and the node signs it into its outbox, and a receipt shows
//! the points, programme, time and place (never anything bought). A card
//! registered in another municipality (a visitor) is shown as such: it may
//! read its history and link this kiosk's facility cards, not register,
//! change its ID here or donate this town's points.
//!
//! At a node the hub vouched for as voucher issuer, a holder registered
//! here may also turn points into vouchers (issue 17 part 1(a)): the
//! points on the keypad, then how to split them (vouchers of one face
//! value, the rest in one more), then the PIN; the card signs that very
//! issue, the node signs it into its outbox and then the vouchers, and the
//! receipt shows a QR code per voucher (the driver also sends them to the
//! receipt printer).

use crate::card::Pin;
use mykey_sync_proto::holder::{HolderAction, HolderDone, HolderHistory, HolderRefusal};
use mykey_sync_proto::{
    AccountId, CardKey, DonationRecipient, FacilityCardNumber, FacilityId, MunicipalityCode,
    MyKeyId, Points, ProgramId, UnixMillis,
};
use zeroize::Zeroizing;

/// Digits of a JPKI user-authentication PIN.
pub const PIN_DIGITS: usize = 4;
/// Longest My Key ID the keyboard takes (the ID rules' own bound).
pub const MAX_ID_CHARS: usize = 32;
/// Most points one kiosk donation gives (a mistyped amount stops here).
pub const MAX_DONATION_POINTS: u64 = 100_000;
/// Digits the amount keypad takes (`MAX_DONATION_POINTS` has six).
const MAX_AMOUNT_DIGITS: usize = 6;

/// What the node knows of the card on the reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSeen {
    /// The card.
    pub card: CardKey,
    /// Its holder's My Key ID as the node last learnt it; `None` when the
    /// node knows no registration of the card here.
    pub my_key_id: Option<MyKeyId>,
    /// The home municipality of a card registered in another one (a
    /// visitor); `None` for this town's holders and unknown cards.
    pub elsewhere: Option<MunicipalityCode>,
    /// The open donation programmes of this node's municipality, as the
    /// hub last told the node.
    pub programmes: Vec<DonationOffer>,
    /// This node may issue vouchers (the hub vouched for it).
    pub issues_vouchers: bool,
}

/// Most vouchers one kiosk issue makes (the hub's bound).
pub const MAX_VOUCHERS: usize = mykey_sync_proto::MAX_KIOSK_VOUCHERS;
/// The face values the kiosk offers to split an amount into.
pub const FACE_VALUES: [u32; 4] = [100, 500, 1000, 5000];

/// Vouchers the holder chose, which the PIN authorises: each voucher's
/// points, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherOrder {
    /// Each voucher's points (1 to [`MAX_VOUCHERS`] of them).
    pub denominations: Vec<u32>,
}

impl VoucherOrder {
    /// `points` as vouchers of `face`, the rest in one more; `None` if that
    /// is more than [`MAX_VOUCHERS`] or `face` is 0.
    pub fn split(points: u32, face: u32) -> Option<VoucherOrder> {
        let n = points.checked_div(face)?;
        let rest = points % face;
        let mut denominations = vec![face; usize::try_from(n).ok()?];
        if rest > 0 {
            denominations.push(rest);
        }
        (!denominations.is_empty() && denominations.len() <= MAX_VOUCHERS)
            .then_some(VoucherOrder { denominations })
    }

    /// The points in all.
    pub fn points(&self) -> u64 {
        self.denominations.iter().map(|d| u64::from(*d)).sum()
    }
}

/// A kiosk issue's receipt: the vouchers (shown as QR codes and printed),
/// the time and the place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherReceipt {
    /// The vouchers, signed by the node.
    pub vouchers: Vec<mykey_voucher::SignedVoucher>,
    /// The facility of the kiosk's node.
    pub place: FacilityId,
    /// The issue's seq in the node's chain.
    pub seq: u64,
    /// The kiosk's clock when it was signed.
    pub at: UnixMillis,
    /// Whether the receipt printer took them.
    pub printed: bool,
}

/// Why vouchers were not made (nothing was signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoucherRefusal {
    /// More than the balance here less what is pending.
    BeyondBalance {
        /// What may be turned into vouchers.
        available: Points,
    },
    /// This node cannot issue vouchers now (not vouched for, withdrawn,
    /// its limits, the card's state).
    NotHere,
}

/// A donation programme the kiosk offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationOffer {
    /// The programme.
    pub programme: ProgramId,
    /// Who receives the money, as holders read it.
    pub recipient: DonationRecipient,
}

/// A donation the holder chose, which the PIN authorises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Donation {
    /// To which programme.
    pub offer: DonationOffer,
    /// How many points (1 to [`MAX_DONATION_POINTS`]).
    pub points: Points,
}

/// A donation's receipt: points, programme, time and place; nothing bought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationReceipt {
    /// What was given.
    pub donation: Donation,
    /// The facility of the kiosk's node.
    pub place: FacilityId,
    /// The transaction's seq in the node's chain.
    pub seq: u64,
    /// The kiosk's clock when it was signed.
    pub at: UnixMillis,
}

/// Why a donation was not made (nothing was signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DonationRefusal {
    /// More than the balance here less what is pending.
    BeyondBalance {
        /// What may be given.
        available: Points,
    },
    /// The programme is no longer open here.
    ProgrammeClosed,
    /// This node cannot take donations (its limits, the card's state).
    NotHere,
}

/// What the PIN the holder types will authorise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Read one's points and history.
    Read,
    /// A change at the hub, signed by the card.
    Order(HolderAction),
    /// A donation, signed by the card and then the node.
    Donate(Donation),
    /// Vouchers, signed by the card and then the node.
    IssueVouchers(VoucherOrder),
}

/// What a finished order says on its receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// What was ordered.
    pub action: HolderAction,
    /// The hub's answer; `None`: pending (queued until the link returns).
    pub done: Option<HolderDone>,
    /// The kiosk's clock when it ended.
    pub at: UnixMillis,
}

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
    /// The hub carried out the order.
    Done(HolderDone, UnixMillis),
    /// The hub was not reachable: the signed order waits in the queue.
    Queued(UnixMillis),
    /// The hub said whether the typed ID is free (`None`: the hub was not
    /// reachable, so the order is signed unchecked and the hub decides later).
    IdChecked(Option<bool>),
    /// The donation is signed into the node's outbox (seq, place, time).
    Donated {
        /// Its seq in the node's chain.
        seq: u64,
        /// The node's facility.
        place: FacilityId,
        /// When.
        at: UnixMillis,
    },
    /// The donation was not made.
    NotDonated(DonationRefusal),
    /// The vouchers are signed (their issue in the node's outbox).
    VouchersIssued(VoucherReceipt),
    /// The vouchers were not made.
    NotIssued(VoucherRefusal),
}

/// What the screen shows.
#[derive(Debug, PartialEq, Eq)]
pub enum Screen {
    /// Waiting for a card.
    Idle,
    /// A card is present: what the holder may do.
    Menu {
        /// The holder's ID as the node knows it (`None`: not registered here).
        my_key_id: Option<MyKeyId>,
        /// Facilities whose cards may be linked here (registered holders).
        links: Vec<FacilityId>,
        /// Registered in this other municipality (a visitor).
        elsewhere: Option<MunicipalityCode>,
        /// Donating is offered (registered here, a programme open).
        donate: bool,
        /// Vouchers are offered (registered here, a voucher issuer node).
        vouchers: bool,
    },
    /// The keypad for the points to turn into vouchers.
    VoucherAmount {
        /// Digits typed so far.
        text: String,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// How to split the points into vouchers.
    VoucherSplit {
        /// The points.
        points: u32,
        /// The splits offered, one per face value that makes at most
        /// [`MAX_VOUCHERS`] vouchers.
        options: Vec<VoucherOrder>,
    },
    /// The open donation programmes to choose from.
    Programmes(Vec<DonationOffer>),
    /// The keypad for a donation's points.
    Amount {
        /// The programme chosen.
        offer: DonationOffer,
        /// Digits typed so far.
        text: String,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// The on-screen keyboard for a facility card number.
    NumberEntry {
        /// What is typed so far.
        text: String,
        /// The facility.
        facility: FacilityId,
        /// Linking (true) or unlinking (false).
        link: bool,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// The on-screen keyboard for a new My Key ID.
    IdEntry {
        /// What is typed so far.
        text: String,
        /// Registering (true) or changing (false).
        register: bool,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// The keypad, with the number of digits typed, what the PIN will
    /// authorise and what went wrong last.
    Pin {
        /// Digits typed so far.
        typed: usize,
        /// What the PIN authorises.
        task: Task,
        /// The last attempt's problem.
        notice: Option<Notice>,
    },
    /// The card signs and the hub is asked.
    Working,
    /// The history from the hub.
    Online(Box<HolderHistory>),
    /// What the node holds, marked offline.
    Offline(OfflineView),
    /// An order's receipt (printable), until the card leaves.
    Receipt(Receipt),
    /// A donation's receipt (printable), until the card leaves.
    DonationReceipt(DonationReceipt),
    /// The vouchers (QR codes, printed), until the card leaves.
    VoucherReceipt(VoucherReceipt),
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
    /// The typed ID breaks the rules (3 to 32 letters and digits).
    BadId,
    /// The ID is (or was) someone's.
    IdTaken,
    /// The typed card number breaks the rules.
    BadNumber,
    /// The typed points are not 1 to [`MAX_DONATION_POINTS`].
    BadAmount,
    /// The donation was not made.
    NotDonated(DonationRefusal),
    /// The typed points are not 1 to [`mykey_sync_proto::MAX_KIOSK_ISSUE_POINTS`].
    BadVoucherAmount,
    /// The vouchers were not made.
    NotIssued(VoucherRefusal),
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
    /// Have `card` sign `action` with `pin` and send it to the hub (or,
    /// offline, queue it); answer under `generation`.
    Order {
        /// The turn this belongs to.
        generation: Generation,
        /// The card on the reader.
        card: CardKey,
        /// The PIN typed.
        pin: Pin,
        /// What the holder authorises.
        action: HolderAction,
    },
    /// Ask the hub whether `my_key_id` is free; answer under `generation`.
    CheckId {
        /// The turn this belongs to.
        generation: Generation,
        /// The ID typed.
        my_key_id: MyKeyId,
    },
    /// Have `card` sign `donation` with `pin` and the node sign it into
    /// its outbox; answer under `generation`.
    Donate {
        /// The turn this belongs to.
        generation: Generation,
        /// The card on the reader.
        card: CardKey,
        /// The PIN typed.
        pin: Pin,
        /// What the holder gives.
        donation: Donation,
    },
    /// Have `card` sign the issue of `order` with `pin`, the node sign it
    /// into its outbox and then the vouchers; answer under `generation`.
    IssueVouchers {
        /// The turn this belongs to.
        generation: Generation,
        /// The card on the reader.
        card: CardKey,
        /// The PIN typed.
        pin: Pin,
        /// The vouchers chosen.
        order: VoucherOrder,
    },
}

/// A menu choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Read one's points.
    History,
    /// Register or change one's My Key ID.
    SetId,
    /// Link a card of the n-th facility offered.
    Link(usize),
    /// Unlink a card of the n-th facility offered.
    Unlink(usize),
    /// Donate points.
    Donate,
    /// The n-th donation programme listed.
    Programme(usize),
    /// Turn points into vouchers.
    Vouchers,
    /// The n-th split offered.
    Split(usize),
    /// Back to the menu.
    Menu,
}

/// A reader event, a key or an answer.
#[derive(Debug)]
pub enum Input {
    /// A card was put on the reader (its key read from its certificate).
    CardIn(CardSeen),
    /// The card left the reader.
    CardOut,
    /// A menu button.
    Choose(Choice),
    /// A keypad digit (0-9), on the keyboard too.
    Digit(u8),
    /// A keyboard letter (ASCII).
    Letter(u8),
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
    card: Option<CardSeen>,
    entry: Zeroizing<Vec<u8>>,
    generation: Generation,
    /// What the action under way was asked for (for its answer's screen).
    task: Option<Task>,
    /// Facilities whose cards may be linked at this kiosk.
    links: Vec<FacilityId>,
}

impl Default for Kiosk {
    fn default() -> Self {
        Kiosk {
            screen: Screen::Idle,
            card: None,
            entry: Zeroizing::new(Vec::with_capacity(PIN_DIGITS)),
            generation: Generation(0),
            task: None,
            links: Vec::new(),
        }
    }
}

impl Kiosk {
    /// A kiosk that offers linking cards of `links` (in this order).
    pub fn with_links(links: Vec<FacilityId>) -> Kiosk {
        Kiosk {
            links,
            ..Kiosk::default()
        }
    }

    fn menu(&self) -> Screen {
        let my_key_id = self.card.as_ref().and_then(|c| c.my_key_id.clone());
        let elsewhere = self.card.as_ref().and_then(|c| c.elsewhere);
        let here = my_key_id.is_some() && elsewhere.is_none();
        Screen::Menu {
            links: if my_key_id.is_some() || elsewhere.is_some() {
                self.links.clone()
            } else {
                vec![]
            },
            donate: here && self.card.as_ref().is_some_and(|c| !c.programmes.is_empty()),
            vouchers: here && self.card.as_ref().is_some_and(|c| c.issues_vouchers),
            my_key_id,
            elsewhere,
        }
    }

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
            Input::CardIn(seen) => {
                self.next_turn();
                self.card = Some(seen);
                self.screen = self.menu();
                None
            }
            Input::Choose(choice) => {
                self.choose(choice);
                None
            }
            Input::Letter(c) => {
                match &mut self.screen {
                    Screen::IdEntry { text, notice, .. }
                        if c.is_ascii_alphabetic() && text.len() < MAX_ID_CHARS =>
                    {
                        text.push(char::from(c));
                        *notice = None;
                    }
                    Screen::NumberEntry { text, notice, .. }
                        if (c.is_ascii_alphabetic() || c == b'-') && text.len() < MAX_ID_CHARS =>
                    {
                        text.push(char::from(c));
                        *notice = None;
                    }
                    _ => {}
                }
                None
            }
            Input::CardOut => {
                self.next_turn();
                self.card = None;
                self.screen = Screen::Idle;
                None
            }
            Input::Digit(d) if d <= 9 => {
                match &mut self.screen {
                    Screen::Pin { typed, notice, .. } if self.entry.len() < PIN_DIGITS => {
                        self.entry.push(b'0' + d);
                        *typed = self.entry.len();
                        *notice = None;
                    }
                    Screen::IdEntry { text, notice, .. }
                    | Screen::NumberEntry { text, notice, .. }
                        if text.len() < MAX_ID_CHARS =>
                    {
                        text.push(char::from(b'0' + d));
                        *notice = None;
                    }
                    Screen::Amount { text, notice, .. }
                    | Screen::VoucherAmount { text, notice }
                        if text.len() < MAX_AMOUNT_DIGITS && !(text.is_empty() && d == 0) =>
                    {
                        text.push(char::from(b'0' + d));
                        *notice = None;
                    }
                    _ => {}
                }
                None
            }
            Input::Digit(_) => None,
            Input::Back => {
                match &mut self.screen {
                    Screen::Pin { typed, .. } => {
                        self.entry.pop();
                        *typed = self.entry.len();
                    }
                    Screen::IdEntry { text, .. }
                    | Screen::NumberEntry { text, .. }
                    | Screen::Amount { text, .. }
                    | Screen::VoucherAmount { text, .. } => {
                        text.pop();
                    }
                    _ => {}
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
        self.task = None;
    }

    fn choose(&mut self, choice: Choice) {
        if self.card.is_none() {
            return;
        }
        let task = match (&self.screen, choice) {
            (Screen::Menu { .. }, Choice::History) => Task::Read,
            (Screen::Menu { links, .. }, Choice::Link(i) | Choice::Unlink(i)) => {
                if let Some(facility) = links.get(i) {
                    self.screen = Screen::NumberEntry {
                        text: String::new(),
                        facility: facility.clone(),
                        link: matches!(choice, Choice::Link(_)),
                        notice: None,
                    };
                }
                return;
            }
            (Screen::Menu { donate: true, .. }, Choice::Donate) => {
                let offers = self
                    .card
                    .as_ref()
                    .map(|c| c.programmes.clone())
                    .unwrap_or_default();
                self.screen = Screen::Programmes(offers);
                return;
            }
            (Screen::Menu { vouchers: true, .. }, Choice::Vouchers) => {
                self.screen = Screen::VoucherAmount {
                    text: String::new(),
                    notice: None,
                };
                return;
            }
            (Screen::VoucherSplit { options, .. }, Choice::Split(i)) => match options.get(i) {
                Some(order) => Task::IssueVouchers(order.clone()),
                None => return,
            },
            (Screen::Programmes(offers), Choice::Programme(i)) => {
                if let Some(offer) = offers.get(i) {
                    self.screen = Screen::Amount {
                        offer: offer.clone(),
                        text: String::new(),
                        notice: None,
                    };
                }
                return;
            }
            (
                Screen::Menu {
                    elsewhere: Some(_), ..
                },
                Choice::SetId,
            ) => return,
            (Screen::Menu { my_key_id, .. }, Choice::SetId) => {
                self.screen = Screen::IdEntry {
                    text: String::new(),
                    register: my_key_id.is_none(),
                    notice: None,
                };
                return;
            }
            (Screen::Menu { .. } | Screen::Working, _) => return,
            (_, Choice::Menu) => {
                self.entry.clear();
                self.screen = self.menu();
                return;
            }
            _ => return,
        };
        self.screen = Screen::Pin {
            typed: 0,
            task,
            notice: None,
        };
    }

    /// OK on the keyboard: the ID is checked against the rules, then its
    /// availability at the hub, then the PIN is asked for the order.
    fn submit_id(&mut self) -> Option<Effect> {
        let (
            Screen::IdEntry {
                text,
                register,
                notice,
            },
            Some(seen),
        ) = (&mut self.screen, &self.card)
        else {
            return None;
        };
        let Ok(to) = MyKeyId::parse(text) else {
            *notice = Some(Notice::BadId);
            return None;
        };
        let action = match (&seen.my_key_id, *register) {
            (Some(from), false) => HolderAction::ChangeMyKeyId {
                from: from.clone(),
                to: to.clone(),
            },
            _ => HolderAction::Register {
                my_key_id: to.clone(),
            },
        };
        self.task = Some(Task::Order(action));
        self.screen = Screen::Working;
        Some(Effect::CheckId {
            generation: self.generation,
            my_key_id: to,
        })
    }

    /// OK on the keyboard for a facility card number.
    fn submit_number(&mut self) {
        let Screen::NumberEntry {
            text,
            facility,
            link,
            notice,
        } = &mut self.screen
        else {
            return;
        };
        let Ok(number) = FacilityCardNumber::parse(text) else {
            *notice = Some(Notice::BadNumber);
            return;
        };
        let facility = facility.clone();
        let action = if *link {
            HolderAction::LinkFacilityCard { facility, number }
        } else {
            HolderAction::UnlinkFacilityCard { facility, number }
        };
        self.screen = Screen::Pin {
            typed: 0,
            task: Task::Order(action),
            notice: None,
        };
    }

    /// OK on the amount keypad: 1 to [`MAX_DONATION_POINTS`], then the PIN.
    fn submit_amount(&mut self) {
        let Screen::Amount {
            offer,
            text,
            notice,
        } = &mut self.screen
        else {
            return;
        };
        let points = text
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=MAX_DONATION_POINTS).contains(p))
            .and_then(|p| Points::new(p).ok());
        let Some(points) = points else {
            *notice = Some(Notice::BadAmount);
            return;
        };
        self.screen = Screen::Pin {
            typed: 0,
            task: Task::Donate(Donation {
                offer: offer.clone(),
                points,
            }),
            notice: None,
        };
    }

    /// OK on the voucher keypad: 1 to the most one issue takes, then the
    /// splits into vouchers that make at most [`MAX_VOUCHERS`].
    fn submit_voucher_amount(&mut self) {
        let Screen::VoucherAmount { text, notice } = &mut self.screen else {
            return;
        };
        let points = text
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=mykey_sync_proto::MAX_KIOSK_ISSUE_POINTS).contains(&u64::from(*p)));
        let Some(points) = points else {
            *notice = Some(Notice::BadVoucherAmount);
            return;
        };
        let options: Vec<VoucherOrder> = FACE_VALUES
            .iter()
            .filter(|f| **f <= points)
            .filter_map(|f| VoucherOrder::split(points, *f))
            .collect();
        // Below the smallest face value: one voucher of the points.
        let options = if options.is_empty() {
            VoucherOrder::split(points, points).into_iter().collect()
        } else {
            options
        };
        self.screen = Screen::VoucherSplit { points, options };
    }

    fn submit(&mut self) -> Option<Effect> {
        if matches!(self.screen, Screen::VoucherAmount { .. }) {
            self.submit_voucher_amount();
            return None;
        }
        if matches!(self.screen, Screen::IdEntry { .. }) {
            return self.submit_id();
        }
        if matches!(self.screen, Screen::NumberEntry { .. }) {
            self.submit_number();
            return None;
        }
        if matches!(self.screen, Screen::Amount { .. }) {
            self.submit_amount();
            return None;
        }
        let (
            Screen::Pin {
                typed,
                notice,
                task,
            },
            Some(seen),
        ) = (&mut self.screen, &self.card)
        else {
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
        let card = seen.card.clone();
        let task = task.clone();
        self.entry.clear();
        self.screen = Screen::Working;
        self.task = Some(task.clone());
        Some(match task {
            Task::Read => Effect::Read {
                generation: self.generation,
                card,
                pin,
            },
            Task::Order(action) => Effect::Order {
                generation: self.generation,
                card,
                pin,
                action,
            },
            Task::Donate(donation) => Effect::Donate {
                generation: self.generation,
                card,
                pin,
                donation,
            },
            Task::IssueVouchers(order) => Effect::IssueVouchers {
                generation: self.generation,
                card,
                pin,
                order,
            },
        })
    }

    fn answer(&mut self, outcome: Outcome) {
        let task = self.task.take().unwrap_or(Task::Read);
        let again = |notice| Screen::Pin {
            typed: 0,
            task: task.clone(),
            notice: Some(notice),
        };
        let order = match &task {
            Task::Order(a) => Some(a.clone()),
            Task::Read | Task::Donate(_) | Task::IssueVouchers(_) => None,
        };
        let donation = match &task {
            Task::Donate(d) => Some(d.clone()),
            _ => None,
        };
        self.screen = match outcome {
            Outcome::IdChecked(Some(true) | None) => Screen::Pin {
                typed: 0,
                task,
                notice: None,
            },
            Outcome::IdChecked(Some(false)) => taken_entry(order),
            Outcome::Done(done, at) => {
                if let (Some(seen), Some(id)) = (&mut self.card, done_id(&done)) {
                    seen.my_key_id = Some(id);
                }
                match order {
                    Some(action) => Screen::Receipt(Receipt {
                        action,
                        done: Some(done),
                        at,
                    }),
                    None => Screen::Message(Notice::CardFailed),
                }
            }
            Outcome::Queued(at) => match order {
                Some(action) => Screen::Receipt(Receipt {
                    action,
                    done: None,
                    at,
                }),
                None => Screen::Message(Notice::CardFailed),
            },
            Outcome::Refused(HolderRefusal::MyKeyIdTaken) if order.is_some() => taken_entry(order),
            Outcome::Donated { seq, place, at } => match donation {
                Some(donation) => Screen::DonationReceipt(DonationReceipt {
                    donation,
                    place,
                    seq,
                    at,
                }),
                None => Screen::Message(Notice::CardFailed),
            },
            Outcome::NotDonated(DonationRefusal::BeyondBalance { available }) => match donation {
                // The amount again, kept for correcting, with what may be given.
                Some(d) => Screen::Amount {
                    text: d.points.get().to_string(),
                    offer: d.offer,
                    notice: Some(Notice::NotDonated(DonationRefusal::BeyondBalance {
                        available,
                    })),
                },
                None => Screen::Message(Notice::CardFailed),
            },
            Outcome::NotDonated(r) => Screen::Message(Notice::NotDonated(r)),
            Outcome::VouchersIssued(r) => Screen::VoucherReceipt(r),
            Outcome::NotIssued(VoucherRefusal::BeyondBalance { available }) => {
                // The amount again, kept for correcting, with what may be used.
                let text = match &task {
                    Task::IssueVouchers(o) => o.points().to_string(),
                    _ => String::new(),
                };
                Screen::VoucherAmount {
                    text,
                    notice: Some(Notice::NotIssued(VoucherRefusal::BeyondBalance {
                        available,
                    })),
                }
            }
            Outcome::NotIssued(r) => Screen::Message(Notice::NotIssued(r)),
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

/// The ID an order left the holder with.
fn done_id(done: &HolderDone) -> Option<MyKeyId> {
    match done {
        HolderDone::Registered { my_key_id, .. } => Some(my_key_id.clone()),
        HolderDone::MyKeyIdChanged { to, .. } => Some(to.clone()),
        HolderDone::FacilityCard { .. } | HolderDone::LinkRequested { .. } => None,
    }
}

/// The keyboard again, with the ID kept and the notice that it is taken.
fn taken_entry(order: Option<HolderAction>) -> Screen {
    let (text, register) = match order {
        Some(HolderAction::Register { my_key_id }) => (my_key_id.to_string(), true),
        Some(HolderAction::ChangeMyKeyId { to, .. }) => (to.to_string(), false),
        _ => (String::new(), false),
    };
    Screen::IdEntry {
        text,
        register,
        notice: Some(Notice::IdTaken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CardKey {
        CardKey::new(vec![0x30, 1], vec![7]).unwrap()
    }

    fn seen() -> CardSeen {
        CardSeen {
            card: card(),
            my_key_id: Some(MyKeyId::parse("Akiko").unwrap()),
            elsewhere: None,
            programmes: vec![],
            issues_vouchers: false,
        }
    }

    /// A card in, and the history chosen.
    fn reading() -> Kiosk {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(seen()));
        k.step(Input::Choose(Choice::History));
        k
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
        let mut k = reading();
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
                task: Task::Read,
                notice: Some(Notice::ShortPin)
            }
        );
        let mut k = reading();
        for d in [1, 2, 3, 4, 5, 10] {
            k.step(Input::Digit(d));
        }
        k.step(Input::Back);
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 3,
                task: Task::Read,
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
                    task: Task::Read,
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
                    task: Task::Read,
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
        k.step(Input::CardIn(seen()));
        k.step(Input::Answer(asked, Outcome::History(Box::new(history()))));
        assert!(
            matches!(k.screen(), Screen::Menu { .. }),
            "{:?}",
            k.screen()
        );
        k.step(Input::Choose(Choice::History));
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
        let mut k = reading();
        k.step(Input::Digit(4));
        k.step(Input::CardOut);
        assert!(k.entry.is_empty(), "the typed digit outlived the card");
    }

    fn typed_id(k: &mut Kiosk, text: &str) {
        for b in text.bytes() {
            if b.is_ascii_digit() {
                k.step(Input::Digit(b - b'0'));
            } else {
                k.step(Input::Letter(b));
            }
        }
    }

    #[test]
    fn a_new_id_is_typed_checked_then_signed_after_the_pin() {
        // A registered holder changes their ID.
        let mut k = Kiosk::default();
        k.step(Input::CardIn(seen()));
        k.step(Input::Choose(Choice::SetId));
        typed_id(&mut k, "ab");
        k.step(Input::Submit);
        assert!(
            matches!(
                k.screen(),
                Screen::IdEntry {
                    notice: Some(Notice::BadId),
                    register: false,
                    ..
                }
            ),
            "{:?}",
            k.screen()
        );
        typed_id(&mut k, "c9x");
        k.step(Input::Back);
        // The hub is asked first: taken, the keyboard again before any PIN.
        let Some(Effect::CheckId {
            generation,
            my_key_id,
        }) = k.step(Input::Submit)
        else {
            panic!("expected an ID check");
        };
        assert_eq!(my_key_id.as_str(), "abc9");
        assert_eq!(k.screen(), &Screen::Working);
        k.step(Input::Answer(generation, Outcome::IdChecked(Some(false))));
        assert!(
            matches!(k.screen(), Screen::IdEntry { notice: Some(Notice::IdTaken), text, .. } if text == "abc9"),
            "{:?}",
            k.screen()
        );
        let Some(Effect::CheckId { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected an ID check");
        };
        k.step(Input::Answer(generation, Outcome::IdChecked(Some(true))));
        let change = HolderAction::ChangeMyKeyId {
            from: MyKeyId::parse("Akiko").unwrap(),
            to: MyKeyId::parse("abc9").unwrap(),
        };
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 0,
                task: Task::Order(change.clone()),
                notice: None
            }
        );
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::Order {
            action, generation, ..
        }) = k.step(Input::Submit)
        else {
            panic!("expected an order");
        };
        assert_eq!(action, change);
        // Taken: back to the keyboard with the ID kept and the notice.
        k.step(Input::Answer(
            generation,
            Outcome::Refused(HolderRefusal::MyKeyIdTaken),
        ));
        assert_eq!(
            k.screen(),
            &Screen::IdEntry {
                text: "abc9".into(),
                register: false,
                notice: Some(Notice::IdTaken)
            }
        );
        k.step(Input::Letter(b'z'));
        let Some(Effect::CheckId { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected an ID check");
        };
        k.step(Input::Answer(generation, Outcome::IdChecked(Some(true))));
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::Order { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected an order");
        };
        let done = HolderDone::MyKeyIdChanged {
            account: AccountId::new(2).unwrap(),
            from: MyKeyId::parse("Akiko").unwrap(),
            to: MyKeyId::parse("abc9z").unwrap(),
        };
        k.step(Input::Answer(
            generation,
            Outcome::Done(done.clone(), UnixMillis(5)),
        ));
        let Screen::Receipt(r) = k.screen() else {
            panic!("expected a receipt, got {:?}", k.screen());
        };
        assert_eq!((r.done.as_ref(), r.at), (Some(&done), UnixMillis(5)));
        // The menu knows the new ID; the card's leaving clears the receipt.
        k.step(Input::Choose(Choice::Menu));
        assert_eq!(
            k.screen(),
            &Screen::Menu {
                my_key_id: Some(MyKeyId::parse("abc9z").unwrap()),
                links: vec![],
                elsewhere: None,
                donate: false,
                vouchers: false,
            }
        );
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
    }

    #[test]
    fn an_unregistered_card_registers_and_offline_the_receipt_says_pending() {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(CardSeen {
            card: card(),
            my_key_id: None,
            elsewhere: None,
            programmes: vec![],
            issues_vouchers: false,
        }));
        k.step(Input::Choose(Choice::SetId));
        typed_id(&mut k, "Hana7");
        // Offline: the ID cannot be checked; the hub decides when the order arrives.
        let Some(Effect::CheckId { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected an ID check");
        };
        k.step(Input::Answer(generation, Outcome::IdChecked(None)));
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::Order {
            action, generation, ..
        }) = k.step(Input::Submit)
        else {
            panic!("expected an order");
        };
        let register = HolderAction::Register {
            my_key_id: MyKeyId::parse("Hana7").unwrap(),
        };
        assert_eq!(action, register);
        k.step(Input::Answer(generation, Outcome::Queued(UnixMillis(9))));
        assert_eq!(
            k.screen(),
            &Screen::Receipt(Receipt {
                action: register,
                done: None,
                at: UnixMillis(9)
            })
        );
    }

    #[test]
    fn a_card_pulled_while_typing_an_id_leaves_nothing() {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(seen()));
        k.step(Input::Choose(Choice::SetId));
        typed_id(&mut k, "Other1");
        let Some(Effect::CheckId { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected an ID check");
        };
        k.step(Input::Answer(generation, Outcome::IdChecked(Some(true))));
        k.step(Input::Digit(4));
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
        assert!(k.entry.is_empty());
        // The same card again starts from the menu: no order was made.
        k.step(Input::CardIn(seen()));
        assert!(matches!(k.screen(), Screen::Menu { .. }));
        assert!(k.step(Input::Submit).is_none());
    }

    #[test]
    fn a_registered_holder_links_and_unlinks_a_card_of_an_offered_facility() {
        let lib = FacilityId::parse("lib-1").unwrap();
        let mut k = Kiosk::with_links(vec![lib.clone()]);
        // Not registered: nothing to link to.
        k.step(Input::CardIn(CardSeen {
            card: card(),
            my_key_id: None,
            elsewhere: None,
            programmes: vec![],
            issues_vouchers: false,
        }));
        assert!(matches!(k.screen(), Screen::Menu { links, .. } if links.is_empty()));
        k.step(Input::CardIn(seen()));
        k.step(Input::Choose(Choice::Link(1)));
        assert!(
            matches!(k.screen(), Screen::Menu { .. }),
            "no second facility"
        );
        k.step(Input::Choose(Choice::Link(0)));
        for c in b"L-" {
            k.step(Input::Letter(*c));
        }
        k.step(Input::Letter(b'#'));
        for d in [0, 4, 2] {
            k.step(Input::Digit(d));
        }
        k.step(Input::Submit);
        let link = HolderAction::LinkFacilityCard {
            facility: lib.clone(),
            number: FacilityCardNumber::parse("L-042").unwrap(),
        };
        assert!(
            matches!(k.screen(), Screen::Pin { task: Task::Order(a), .. } if *a == link),
            "{:?}",
            k.screen()
        );
        k.step(Input::Choose(Choice::Menu));
        k.step(Input::Choose(Choice::Unlink(0)));
        k.step(Input::Submit);
        assert!(matches!(
            k.screen(),
            Screen::NumberEntry {
                notice: Some(Notice::BadNumber),
                link: false,
                ..
            }
        ));
        k.step(Input::Digit(7));
        k.step(Input::Submit);
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::Order { action, .. }) = k.step(Input::Submit) else {
            panic!("expected an order");
        };
        assert_eq!(
            action,
            HolderAction::UnlinkFacilityCard {
                facility: lib,
                number: FacilityCardNumber::parse("7").unwrap()
            }
        );
    }

    fn offer(id: &str) -> DonationOffer {
        DonationOffer {
            programme: ProgramId::parse(id).unwrap(),
            recipient: DonationRecipient::parse("能登町 災害義援金").unwrap(),
        }
    }

    /// A registered holder's card with two programmes open.
    fn donor() -> CardSeen {
        CardSeen {
            programmes: vec![offer("noto-relief"), offer("flood-aid")],
            issues_vouchers: false,
            ..seen()
        }
    }

    fn keys(k: &mut Kiosk, digits: &[u8]) {
        for d in digits {
            k.step(Input::Digit(*d));
        }
    }

    /// Card in, donate, the n-th programme, `points` typed and OK.
    fn amount_given(n: usize, points: &[u8]) -> Kiosk {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(donor()));
        k.step(Input::Choose(Choice::Donate));
        k.step(Input::Choose(Choice::Programme(n)));
        keys(&mut k, points);
        assert!(k.step(Input::Submit).is_none(), "no effect before the PIN");
        k
    }

    #[test]
    fn a_donation_is_chosen_typed_signed_after_the_pin_and_receipted() {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(donor()));
        assert!(
            matches!(k.screen(), Screen::Menu { donate: true, .. }),
            "{:?}",
            k.screen()
        );
        k.step(Input::Choose(Choice::Donate));
        assert_eq!(
            k.screen(),
            &Screen::Programmes(vec![offer("noto-relief"), offer("flood-aid")])
        );
        // Past the list: nothing.
        k.step(Input::Choose(Choice::Programme(2)));
        assert!(matches!(k.screen(), Screen::Programmes(_)));
        k.step(Input::Choose(Choice::Programme(1)));
        // A leading zero is not typed; too many digits stop at six; 0 and
        // more than the bound are said before any PIN.
        keys(&mut k, &[0, 9, 9, 9, 9, 9, 9, 9]);
        k.step(Input::Submit);
        assert!(
            matches!(k.screen(), Screen::Amount { text, notice: Some(Notice::BadAmount), .. } if text == "999999"),
            "{:?}",
            k.screen()
        );
        for _ in 0..6 {
            k.step(Input::Back);
        }
        k.step(Input::Submit);
        assert!(matches!(
            k.screen(),
            Screen::Amount {
                notice: Some(Notice::BadAmount),
                ..
            }
        ));
        keys(&mut k, &[1, 5, 0, 0]);
        assert!(k.step(Input::Submit).is_none());
        let want = Donation {
            offer: offer("flood-aid"),
            points: Points::new(1500).unwrap(),
        };
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 0,
                task: Task::Donate(want.clone()),
                notice: None
            }
        );
        keys(&mut k, &[4, 3, 2, 1]);
        let Some(Effect::Donate {
            generation,
            donation,
            card: c,
            ..
        }) = k.step(Input::Submit)
        else {
            panic!("expected a donation");
        };
        assert_eq!((&donation, &c), (&want, &card()));
        assert!(k.entry.is_empty());
        // A wrong PIN: the keypad again, for the same donation.
        k.step(Input::Answer(generation, Outcome::WrongPin(2)));
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 0,
                task: Task::Donate(want.clone()),
                notice: Some(Notice::WrongPin { tries_left: 2 })
            }
        );
        keys(&mut k, &[4, 3, 2, 1]);
        let Some(Effect::Donate { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected a donation");
        };
        let place = FacilityId::parse("kiosk-1").unwrap();
        k.step(Input::Answer(
            generation,
            Outcome::Donated {
                seq: 7,
                place: place.clone(),
                at: UnixMillis(99),
            },
        ));
        assert_eq!(
            k.screen(),
            &Screen::DonationReceipt(DonationReceipt {
                donation: want,
                place,
                seq: 7,
                at: UnixMillis(99),
            })
        );
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
    }

    #[test]
    fn a_donation_beyond_the_balance_keeps_the_amount_and_says_what_may_be_given() {
        let mut k = amount_given(0, &[6, 0, 0, 0]);
        keys(&mut k, &[4, 3, 2, 1]);
        let Some(Effect::Donate { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected a donation");
        };
        let available = Points::new(5000).unwrap();
        k.step(Input::Answer(
            generation,
            Outcome::NotDonated(DonationRefusal::BeyondBalance { available }),
        ));
        assert_eq!(
            k.screen(),
            &Screen::Amount {
                offer: offer("noto-relief"),
                text: "6000".into(),
                notice: Some(Notice::NotDonated(DonationRefusal::BeyondBalance {
                    available
                })),
            }
        );
        // Closed meanwhile: said, nothing else.
        k.step(Input::Back);
        k.step(Input::Submit);
        keys(&mut k, &[4, 3, 2, 1]);
        let Some(Effect::Donate { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected a donation");
        };
        k.step(Input::Answer(
            generation,
            Outcome::NotDonated(DonationRefusal::ProgrammeClosed),
        ));
        assert_eq!(
            k.screen(),
            &Screen::Message(Notice::NotDonated(DonationRefusal::ProgrammeClosed))
        );
    }

    #[test]
    fn a_card_pulled_mid_donation_leaves_nothing_and_its_answer_is_dropped() {
        // Pulled with the points typed and the PIN half typed: no effect was
        // ever asked, and the card back starts from the menu.
        let mut k = amount_given(0, &[5, 0, 0]);
        keys(&mut k, &[4, 3]);
        k.step(Input::CardOut);
        assert_eq!(k.screen(), &Screen::Idle);
        assert!(k.entry.is_empty());
        k.step(Input::CardIn(donor()));
        assert!(matches!(k.screen(), Screen::Menu { .. }));
        keys(&mut k, &[2, 1]);
        assert!(
            k.step(Input::Submit).is_none(),
            "a donation outlived its card"
        );
        // Pulled after the PIN: the answer of the old turn never shows, not
        // even to the same card back, nor on a later turn's screen.
        let mut k = amount_given(0, &[5, 0, 0]);
        keys(&mut k, &[4, 3, 2, 1]);
        let Some(Effect::Donate { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected a donation");
        };
        k.step(Input::CardOut);
        k.step(Input::CardIn(donor()));
        let receipt = Outcome::Donated {
            seq: 3,
            place: FacilityId::parse("kiosk-1").unwrap(),
            at: UnixMillis(1),
        };
        k.step(Input::Answer(generation, receipt));
        assert!(
            matches!(k.screen(), Screen::Menu { .. }),
            "{:?}",
            k.screen()
        );
        assert_ne!(k.generation(), generation);
    }

    #[test]
    fn donating_is_offered_only_to_this_towns_holders_with_a_programme_open() {
        let lib = FacilityId::parse("lib-1").unwrap();
        let home = MunicipalityCode::parse("011002").unwrap();
        let cases = [
            // (card, donate offered, register/change offered, links offered)
            (donor(), true, true, true),
            (seen(), false, true, true),
            (
                CardSeen {
                    my_key_id: None,
                    ..donor()
                },
                false,
                true,
                false,
            ),
            (
                CardSeen {
                    my_key_id: None,
                    elsewhere: Some(home),
                    ..donor()
                },
                false,
                false,
                true,
            ),
        ];
        for (i, (card, donate, set_id, links)) in cases.into_iter().enumerate() {
            let mut k = Kiosk::with_links(vec![lib.clone()]);
            let visitor = card.elsewhere;
            k.step(Input::CardIn(card));
            let Screen::Menu {
                donate: d,
                links: l,
                elsewhere,
                ..
            } = k.screen()
            else {
                panic!("case {i}: {:?}", k.screen());
            };
            assert_eq!(
                (*d, !l.is_empty(), *elsewhere),
                (donate, links, visitor),
                "case {i}"
            );
            k.step(Input::Choose(Choice::Donate));
            assert_eq!(
                matches!(k.screen(), Screen::Programmes(_)),
                donate,
                "case {i}"
            );
            k.step(Input::Choose(Choice::Menu));
            k.step(Input::Choose(Choice::SetId));
            assert_eq!(
                matches!(k.screen(), Screen::IdEntry { .. }),
                set_id,
                "case {i}"
            );
        }
    }

    fn issuer_holder() -> CardSeen {
        CardSeen {
            issues_vouchers: true,
            ..seen()
        }
    }

    #[test]
    fn points_split_into_at_most_twenty_vouchers() {
        let split = |p, f| VoucherOrder::split(p, f).map(|o| o.denominations);
        assert_eq!(split(1200, 500), Some(vec![500, 500, 200]));
        assert_eq!(split(1000, 500), Some(vec![500, 500]));
        assert_eq!(split(2000, 100), Some(vec![100; 20]));
        assert_eq!(split(2001, 100), None, "21 vouchers");
        assert_eq!(split(5, 0), None);
        assert_eq!(split(0, 100), None);
    }

    /// Vouchers are offered only to a holder registered here at a node the
    /// hub vouched for; the points, a split, the PIN, then the effect.
    #[test]
    fn vouchers_are_chosen_split_signed_after_the_pin_and_receipted() {
        let mut k = Kiosk::default();
        k.step(Input::CardIn(seen()));
        assert!(matches!(
            k.screen(),
            Screen::Menu {
                vouchers: false,
                ..
            }
        ));
        k.step(Input::Choose(Choice::Vouchers));
        assert!(matches!(k.screen(), Screen::Menu { .. }), "not offered");
        k.step(Input::CardIn(CardSeen {
            my_key_id: None,
            elsewhere: Some(MunicipalityCode::parse("011002").unwrap()),
            ..issuer_holder()
        }));
        assert!(
            matches!(
                k.screen(),
                Screen::Menu {
                    vouchers: false,
                    ..
                }
            ),
            "a visitor is offered none"
        );

        k.step(Input::CardIn(issuer_holder()));
        assert!(matches!(k.screen(), Screen::Menu { vouchers: true, .. }));
        k.step(Input::Choose(Choice::Vouchers));
        for d in [0, 1, 2, 0, 0] {
            k.step(Input::Digit(d));
        }
        // A leading 0 is not typed: 1200.
        k.step(Input::Submit);
        let Screen::VoucherSplit { points, options } = k.screen() else {
            panic!("{:?}", k.screen())
        };
        assert_eq!(*points, 1200);
        let got: Vec<Vec<u32>> = options.iter().map(|o| o.denominations.clone()).collect();
        assert_eq!(
            got,
            vec![vec![100; 12], vec![500, 500, 200], vec![1000, 200]]
        );
        k.step(Input::Choose(Choice::Split(1)));
        let want = VoucherOrder {
            denominations: vec![500, 500, 200],
        };
        assert_eq!(
            k.screen(),
            &Screen::Pin {
                typed: 0,
                task: Task::IssueVouchers(want.clone()),
                notice: None,
            }
        );
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::IssueVouchers {
            generation, order, ..
        }) = k.step(Input::Submit)
        else {
            panic!("expected vouchers");
        };
        assert_eq!(order, want);
        // Beyond the balance: the amount again, with what may be used.
        k.step(Input::Answer(
            generation,
            Outcome::NotIssued(VoucherRefusal::BeyondBalance {
                available: Points::new(800).unwrap(),
            }),
        ));
        assert_eq!(
            k.screen(),
            &Screen::VoucherAmount {
                text: "1200".into(),
                notice: Some(Notice::NotIssued(VoucherRefusal::BeyondBalance {
                    available: Points::new(800).unwrap()
                })),
            }
        );
        // Out of bounds.
        k.step(Input::Choose(Choice::Menu));
        k.step(Input::Choose(Choice::Vouchers));
        for d in [2, 0, 0, 0, 0, 0] {
            k.step(Input::Digit(d));
        }
        k.step(Input::Submit);
        assert!(matches!(
            k.screen(),
            Screen::VoucherAmount {
                notice: Some(Notice::BadVoucherAmount),
                ..
            }
        ));
        // A card pulled after the PIN: its answer is dropped.
        k.step(Input::Choose(Choice::Menu));
        k.step(Input::Choose(Choice::Vouchers));
        k.step(Input::Digit(5));
        k.step(Input::Submit);
        k.step(Input::Choose(Choice::Split(0)));
        for d in [4, 3, 2, 1] {
            k.step(Input::Digit(d));
        }
        let Some(Effect::IssueVouchers { generation, .. }) = k.step(Input::Submit) else {
            panic!("expected vouchers");
        };
        k.step(Input::CardOut);
        k.step(Input::Answer(
            generation,
            Outcome::NotIssued(VoucherRefusal::NotHere),
        ));
        assert_eq!(k.screen(), &Screen::Idle);
    }
}
