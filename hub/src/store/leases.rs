//! Leases by which several hub processes on one database share the timed
//! jobs: one lease per municipality (`ticks/<code>`) and one for the jobs
//! that span every municipality (`ticks/all`), spread over the live
//! processes so each holds at most its share.
//!
//! The deciding step ([`plan_shares`]) is pure: a backend reads the group's
//! rows on its own clock, asks the plan what to take, renew and give up,
//! and writes that (PostgreSQL: `PgStore::share_leases`). A backend only
//! one process serves (SQLite) grants every lease.

/// How long a taken lease lasts unless renewed: three minutes, past the
/// minute between renewals, so one slow minute does not hand it over.
pub const LEASE_MS: u64 = 3 * 60_000;

/// The lease group of the timed jobs.
pub const TICKS_GROUP: &str = "ticks";

/// The name of the lease on one municipality's timed jobs.
pub fn town_lease(code: mykey_sync_proto::MunicipalityCode) -> String {
    format!("{TICKS_GROUP}/{code}")
}

/// The name of the lease on the timed jobs that span every municipality.
pub fn global_lease() -> String {
    format!("{TICKS_GROUP}/all")
}

/// The name of the row by which a process says it is alive in a group
/// (its live holders are counted to cut the shares).
pub fn presence_name(group: &str, holder: &str) -> String {
    format!("{group}@{holder}")
}

/// This hub's name as a lease holder and its leases' length. The name is
/// the host and the process id: unique among the live processes on one
/// database, and the same for every hub one process opens (a hub reopened
/// in the same process keeps its leases; a restarted process waits for the
/// old one's to lapse, or finds them given up at a clean stop).
#[derive(Clone, Debug)]
pub struct TickLease {
    /// The holder name written in `leases`.
    pub holder: String,
    /// How long a taken or renewed lease lasts.
    pub ttl_ms: u64,
    /// The leases the last look found held (to log changes only).
    pub held: Vec<String>,
}

impl TickLease {
    /// This process's holder name with the default length.
    pub fn new() -> TickLease {
        TickLease {
            holder: crate::store::process_name(),
            ttl_ms: LEASE_MS,
            held: vec![],
        }
    }
}

impl Default for TickLease {
    fn default() -> Self {
        TickLease::new()
    }
}

/// One lease of a group as the backend found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// Its name.
    pub name: String,
    /// Who took it last.
    pub holder: String,
    /// Not expired yet.
    pub live: bool,
    /// Less than half its length left: its holder renews it now.
    pub renew_due: bool,
}

/// What a process does with a group's leases at one look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeasePlan {
    /// Free or expired leases it takes.
    pub take: Vec<String>,
    /// Its own leases it renews (half their time is gone).
    pub renew: Vec<String>,
    /// Its own leases it gives up (it holds more than its share).
    pub give_up: Vec<String>,
    /// What it holds afterwards, in `names` order.
    pub held: Vec<String>,
}

/// The share of `names` one of `live_processes` processes holds at most:
/// the ceiling of an even split, so the shares together cover every name.
pub fn share_of(names: usize, live_processes: usize) -> usize {
    names.div_ceil(live_processes.max(1))
}

/// What `me` does with the leases `names` given their rows and the number
/// of live processes (itself included): keep its live leases up to its
/// share (giving up the rest, last names first), take free or expired ones
/// up to its share (first names first), and renew the kept ones that are
/// due. Rows of names outside `names` are ignored.
pub fn plan_shares(
    names: &[String],
    rows: &[LeaseRow],
    me: &str,
    live_processes: usize,
) -> LeasePlan {
    let share = share_of(names.len(), live_processes);
    let row = |n: &String| rows.iter().find(|r| &r.name == n);
    let mine: Vec<&String> = names
        .iter()
        .filter(|n| row(n).is_some_and(|r| r.live && r.holder == me))
        .collect();
    let free: Vec<&String> = names
        .iter()
        .filter(|n| row(n).is_none_or(|r| !r.live))
        .collect();
    let mut plan = LeasePlan::default();
    let kept = mine.len().min(share);
    plan.give_up = mine[kept..].iter().map(|n| (*n).clone()).collect();
    plan.renew = mine[..kept]
        .iter()
        .filter(|n| row(n).is_some_and(|r| r.renew_due))
        .map(|n| (*n).clone())
        .collect();
    plan.take = free
        .iter()
        .take(share - kept)
        .map(|n| (*n).clone())
        .collect();
    plan.held = names
        .iter()
        .filter(|n| mine[..kept].contains(n) || plan.take.contains(n))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ticks/{i}")).collect()
    }

    fn row(name: &str, holder: &str, live: bool, renew_due: bool) -> LeaseRow {
        LeaseRow {
            name: name.into(),
            holder: holder.into(),
            live,
            renew_due,
        }
    }

    #[test]
    fn shares_cover_every_name() {
        for (n, p, share) in [
            (5, 1, 5),
            (5, 2, 3),
            (5, 3, 2),
            (4, 2, 2),
            (1, 3, 1),
            (0, 2, 0),
        ] {
            assert_eq!(share_of(n, p), share, "{n} names, {p} processes");
            assert!(share_of(n, p) * p >= n);
        }
        assert_eq!(share_of(3, 0), 3, "no live process counted: itself");
    }

    #[test]
    fn alone_it_takes_all() {
        let p = plan_shares(&names(3), &[], "a", 1);
        assert_eq!(p.take, names(3));
        assert_eq!(p.held, names(3));
        assert!(p.renew.is_empty() && p.give_up.is_empty());
    }

    #[test]
    fn a_newcomer_takes_only_what_is_free_and_the_holder_gives_up_its_excess() {
        let all = names(5);
        let rows: Vec<LeaseRow> = all.iter().map(|n| row(n, "a", true, false)).collect();
        // b sees a holding everything: nothing is free.
        let b = plan_shares(&all, &rows, "b", 2);
        assert!(b.take.is_empty() && b.held.is_empty());
        // a, counting b now, keeps its share (3) and gives up the last two.
        let a = plan_shares(&all, &rows, "a", 2);
        assert_eq!(a.give_up, ["ticks/3", "ticks/4"]);
        assert_eq!(a.held, names(3));
        assert!(
            a.take.is_empty() && a.renew.is_empty(),
            "nothing written but the give-up"
        );
    }

    #[test]
    fn expired_leases_of_another_are_taken_up_to_the_share() {
        let all = names(4);
        let rows = vec![
            row("ticks/0", "a", true, false),
            row("ticks/1", "dead", false, true),
            row("ticks/2", "dead", false, true),
            row("ticks/3", "a", true, true),
        ];
        let b = plan_shares(&all, &rows, "b", 2);
        assert_eq!(b.take, ["ticks/1", "ticks/2"]);
        // Alone (the dead process no longer counted), a takes them too.
        let a = plan_shares(&all, &rows, "a", 1);
        assert_eq!(a.take, ["ticks/1", "ticks/2"]);
        assert_eq!(a.renew, ["ticks/3"], "only the one due is renewed");
        assert_eq!(a.held, all);
    }

    #[test]
    fn a_live_lease_of_another_is_never_taken() {
        let all = names(2);
        let rows = vec![
            row("ticks/0", "a", true, true),
            row("ticks/1", "a", true, true),
        ];
        let b = plan_shares(&all, &rows, "b", 1);
        assert!(b.take.is_empty() && b.held.is_empty());
    }
}
