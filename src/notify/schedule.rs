//! The delivery actor's bookkeeping: when each queued push is due, which
//! are held back by a backoff or a push service's Retry-After, and how many
//! deliveries each account and each push service has in flight.
//!
//! Pure state over `tokio::time::Instant`; the actor in [`super::queue`]
//! drives it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tokio::time::Instant;

use crate::store::PushKey;

/// Whom a delivery counts against: its account and its push service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    pub account: Arc<str>,
    pub service: Arc<str>,
}

/// How many deliveries may be in flight: in all, per account, per push
/// service, and to all push services whose last request timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLimits {
    pub total: usize,
    pub per_account: usize,
    pub per_service: usize,
    pub timed_out: usize,
}

/// What an attempt told about its push service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// An HTTP answer that says the service is alive (2xx, 4xx).
    Answer,
    /// No answer within the request timeout.
    Silence,
    /// Nothing either way (not sent, refused connection, 5xx).
    Nothing,
}

/// When each queued push is due. An entry is in the schedule at most once;
/// adding it again keeps the earlier time and the earliest detection time,
/// but never earlier than a hold (backoff, Retry-After) on its key.
#[derive(Default)]
pub struct Schedule {
    by_time: BTreeSet<(Instant, PushKey)>,
    entries: HashMap<PushKey, Entry>,
    /// Keys that may not be tried before this time, whatever wakes them.
    holds: HashMap<PushKey, Instant>,
}

struct Entry {
    due: Instant,
    detected: Option<Instant>,
    route: Route,
}

/// A due entry taken from the schedule.
pub struct Due {
    pub key: PushKey,
    pub detected: Option<Instant>,
    pub route: Route,
}

impl Schedule {
    /// Schedules `key` at `at` (or at its hold, if later). `route` is only
    /// asked for when the key is not scheduled yet.
    /// Whether the key is scheduled (or being delivered).
    pub fn contains(&self, key: &PushKey) -> bool {
        self.entries.contains_key(key)
    }

    pub fn add(
        &mut self,
        key: PushKey,
        at: Instant,
        detected: Option<Instant>,
        route: impl FnOnce() -> Route,
    ) {
        let at = match self.holds.get(&key) {
            Some(&held) => at.max(held),
            None => at,
        };
        match self.entries.get_mut(&key) {
            Some(entry) => {
                if at < entry.due {
                    self.by_time.remove(&(entry.due, key.clone()));
                    self.by_time.insert((at, key));
                    entry.due = at;
                }
                entry.detected = match (entry.detected, detected) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => {
                self.by_time.insert((at, key.clone()));
                let route = route();
                self.entries.insert(
                    key,
                    Entry {
                        due: at,
                        detected,
                        route,
                    },
                );
            }
        }
    }

    /// Holds `key` back until `until`: a scheduled entry due earlier moves
    /// there, and later wakes cannot bring it forward.
    pub fn hold(&mut self, key: &PushKey, until: Instant) {
        self.holds.insert(key.clone(), until);
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.due < until {
                self.by_time.remove(&(entry.due, key.clone()));
                self.by_time.insert((until, key.clone()));
                entry.due = until;
            }
        }
    }

    /// Lifts the hold on `key` (its push was delivered or dropped).
    pub fn release(&mut self, key: &PushKey) {
        self.holds.remove(key);
    }

    /// The earliest time after `now` at which an entry falls due. Entries
    /// already due but not admitted wait for a slot, not for a time.
    pub fn next_due_after(&self, now: Instant) -> Option<Instant> {
        self.by_time.iter().map(|(at, _)| *at).find(|at| *at > now)
    }

    /// The first entry due by `now` that is not being delivered already and
    /// whose route `slots` admits.
    pub fn pop_due(
        &mut self,
        now: Instant,
        in_flight: &HashSet<PushKey>,
        slots: &Slots,
    ) -> Option<Due> {
        let (at, key) = self
            .by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .find(|(_, key)| {
                !in_flight.contains(key)
                    && self
                        .entries
                        .get(key)
                        .is_some_and(|entry| slots.admits(&entry.route))
            })?
            .clone();
        self.by_time.remove(&(at, key.clone()));
        let entry = self.entries.remove(&key)?;
        Some(Due {
            key,
            detected: entry.detected,
            route: entry.route,
        })
    }

    #[cfg(test)]
    fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }
}

/// Deliveries in flight, in all and by account and push service; and the
/// push services whose last request timed out, which share a smaller pool
/// (however many accounts and origins whoever set up such endpoints
/// has, they cannot hold more than that once they have timed out once).
pub struct Slots {
    limits: DeliveryLimits,
    total: usize,
    accounts: HashMap<Arc<str>, usize>,
    services: HashMap<Arc<str>, usize>,
    /// Services whose last request timed out, until one is answered. At
    /// most one per registered endpoint origin.
    silent: HashSet<Arc<str>>,
    silent_in_flight: usize,
}

impl Slots {
    pub fn new(limits: DeliveryLimits) -> Self {
        Slots {
            limits,
            total: 0,
            accounts: HashMap::new(),
            services: HashMap::new(),
            silent: HashSet::new(),
            silent_in_flight: 0,
        }
    }

    /// Whether any slot is free at all.
    pub fn has_room(&self) -> bool {
        self.total < self.limits.total
    }

    /// Whether a delivery on `route` may start now.
    pub fn admits(&self, route: &Route) -> bool {
        let used =
            |map: &HashMap<Arc<str>, usize>, name: &Arc<str>| map.get(name).copied().unwrap_or(0);
        self.has_room()
            && used(&self.accounts, &route.account) < self.limits.per_account
            && used(&self.services, &route.service) < self.limits.per_service
            && (!self.silent.contains(&route.service)
                || self.silent_in_flight < self.limits.timed_out)
    }

    /// Takes a slot for `route`; true when it counts against the pool of
    /// silent services (pass that back to [`Slots::give_back`]).
    pub fn take(&mut self, route: &Route) -> bool {
        self.total += 1;
        *self.accounts.entry(route.account.clone()).or_default() += 1;
        *self.services.entry(route.service.clone()).or_default() += 1;
        let silent = self.silent.contains(&route.service);
        if silent {
            self.silent_in_flight += 1;
        }
        silent
    }

    /// Records what an attempt told about `service`.
    pub fn heard(&mut self, service: &Arc<str>, heard: Heard) {
        match heard {
            Heard::Answer => {
                self.silent.remove(service);
            }
            Heard::Silence => {
                self.silent.insert(service.clone());
            }
            Heard::Nothing => {}
        }
    }

    pub fn give_back(&mut self, route: &Route, silent: bool) {
        if silent {
            self.silent_in_flight = self.silent_in_flight.saturating_sub(1);
        }
        self.total = self.total.saturating_sub(1);
        for (map, name) in [
            (&mut self.accounts, &route.account),
            (&mut self.services, &route.service),
        ] {
            if let Some(used) = map.get_mut(name) {
                *used = used.saturating_sub(1);
                if *used == 0 {
                    map.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(device: &str) -> PushKey {
        PushKey {
            device_id: device.into(),
            mailbox: "INBOX".into(),
        }
    }

    fn route(account: &str, service: &str) -> Route {
        Route {
            account: account.into(),
            service: service.into(),
        }
    }

    fn unlimited() -> Slots {
        Slots::new(DeliveryLimits {
            total: 100,
            per_account: 100,
            per_service: 100,
            timed_out: 100,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_keeps_one_entry_per_key_at_its_earliest_time() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        let r = || route("a", "s");
        schedule.add(key("a"), now + Duration::from_secs(10), None, r);
        schedule.add(key("a"), now + Duration::from_secs(5), Some(now), r);
        schedule.add(key("a"), now + Duration::from_secs(20), None, r);
        schedule.add(key("b"), now + Duration::from_secs(7), None, r);
        assert_eq!(schedule.next_due(), Some(now + Duration::from_secs(5)));
        let slots = unlimited();
        assert!(schedule.pop_due(now, &HashSet::new(), &slots).is_none());

        tokio::time::advance(Duration::from_secs(8)).await;
        let busy: HashSet<_> = [key("a")].into();
        let first = schedule.pop_due(Instant::now(), &busy, &slots).unwrap();
        assert_eq!(first.key, key("b"));
        let second = schedule
            .pop_due(Instant::now(), &HashSet::new(), &slots)
            .unwrap();
        assert_eq!((second.key, second.detected), (key("a"), Some(now)));
        assert_eq!(schedule.next_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_not_brought_forward_by_a_wake() {
        let now = Instant::now();
        let later = now + Duration::from_secs(120);
        let mut schedule = Schedule::default();
        let r = || route("a", "s");
        // Woken while in flight, then the attempt said "retry in 120 s".
        schedule.add(key("a"), now, None, r);
        schedule.hold(&key("a"), later);
        assert_eq!(schedule.next_due(), Some(later));
        // New mail: still not before the hold.
        schedule.add(key("a"), now, Some(now), r);
        assert_eq!(schedule.next_due(), Some(later));
        assert!(schedule
            .pop_due(now, &HashSet::new(), &unlimited())
            .is_none());
        assert_eq!(schedule.next_due_after(now), Some(later));

        // Once delivered, a wake is due at once again.
        schedule.pop_due(later, &HashSet::new(), &unlimited());
        schedule.release(&key("a"));
        schedule.add(key("a"), now, None, r);
        assert_eq!(schedule.next_due(), Some(now));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_over_their_share_wait_and_others_pass() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        let mut slots = Slots::new(DeliveryLimits {
            total: 4,
            per_account: 2,
            per_service: 2,
            timed_out: 4,
        });
        for (device, account, service) in [
            ("a1", "greedy", "s1"),
            ("a2", "greedy", "s2"),
            ("a3", "greedy", "s3"),
            ("b1", "other", "s1"),
            ("c1", "third", "s4"),
        ] {
            schedule.add(key(device), now, None, || route(account, service));
        }
        let mut started = Vec::new();
        while let Some(due) = schedule.pop_due(now, &HashSet::new(), &slots) {
            slots.take(&due.route);
            started.push(due.key.device_id);
        }
        // a3 is over greedy's share; b1 still fits s1's.
        assert_eq!(started, ["a1", "a2", "b1", "c1"]);
        assert!(!slots.has_room());
        // Nothing is due later: the waiting entry waits for a slot.
        assert_eq!(schedule.next_due_after(now), None);
        slots.give_back(&route("greedy", "s1"), false);
        let due = schedule.pop_due(now, &HashSet::new(), &slots).unwrap();
        assert_eq!(due.key, key("a3"));
        slots.take(&due.route);
        assert_eq!((slots.accounts.len(), slots.services.len()), (3, 4));
        assert_eq!(slots.accounts.get("greedy"), Some(&2));
    }

    #[test]
    fn services_that_timed_out_share_a_smaller_pool() {
        let mut slots = Slots::new(DeliveryLimits {
            total: 8,
            per_account: 8,
            per_service: 8,
            timed_out: 2,
        });
        let hanging: Vec<Route> = (0..4)
            .map(|i| route(&format!("a{i}"), &format!("s{i}")))
            .collect();
        for r in &hanging {
            slots.heard(&r.service, Heard::Silence);
        }
        assert!(slots.take(&hanging[0]) && slots.take(&hanging[1]));
        assert!(!slots.admits(&hanging[2]));
        // Others are not held back by them.
        assert!(slots.admits(&route("a9", "s9")));
        // An answer clears a service; a slot given back is free again.
        slots.heard(&hanging[3].service, Heard::Answer);
        assert!(slots.admits(&hanging[3]));
        slots.give_back(&hanging[0], true);
        assert!(slots.admits(&hanging[2]));
        // A 5xx or a refused connection changes nothing.
        slots.heard(&hanging[2].service, Heard::Nothing);
        assert!(slots.silent.contains(&hanging[2].service));
    }
}
