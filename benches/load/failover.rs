//! The cluster section's failover: mail arrives steadily (three in four
//! to the accounts of the node about to die, in turn, so each gets some;
//! the rest to the other accounts), and after two seconds of it one node
//! is killed with SIGKILL. The benchmark then watches from three sides:
//! the fake IMAP server (when a new connection of each of the dead node's
//! accounts logged in and went to IDLE: watched again), the database
//! (when no account names the dead node as owner any more) and the nodes'
//! metrics (all accounts watching). Mail keeps coming for three seconds
//! after the last account is watched again; then it waits until every
//! mail was pushed and the push queue is empty, and counts missed and
//! repeated mail (`coverage.rs`).

use std::collections::HashSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::gather;
use crate::coverage::{Coverage, Repeats};
use crate::nodes::{Database, Nodes};
use crate::receiver::{now_us, Receiver, Tally};
use crate::{per_account, quantile, Fake, Injected, Options};

/// Steady mail before the kill.
const BEFORE_KILL: Duration = Duration::from_secs(2);
/// Mail keeps coming this long after the last account is watched again.
const AFTER_BACK: Duration = Duration::from_secs(3);
/// Give up waiting for the accounts to be watched again after this.
const BACK_LIMIT: Duration = Duration::from_secs(180);
/// Give up waiting for the mail to be pushed after this (a push claimed
/// by the dead node waits out its claim, 150 s).
const PUSHED_LIMIT: Duration = Duration::from_secs(240);
/// A mail pushed later than this after it came is counted as late (the
/// failover target).
const LATE: Duration = Duration::from_secs(30);
/// How often the three sides are asked.
const LOOK_EVERY: u32 = 25;

/// What the failover measured.
pub struct FailoverFigures {
    /// Accounts the killed node owned.
    pub accounts: usize,
    /// Seconds from the kill until all of them were watched again.
    pub back_s: Option<f64>,
    pub repeats: Repeats,
}

/// When each side saw the failover done, µs since the Unix epoch.
#[derive(Default)]
struct Seen {
    back_us: Option<u64>,
    claimed_us: Option<u64>,
    all_watching_us: Option<u64>,
}

/// Which account the next mail goes to: the victim's accounts in turn
/// (shuffled once), every fourth mail to a random other account.
struct Targets {
    victims: Vec<usize>,
    others: Vec<usize>,
    sent: usize,
}

impl Targets {
    fn next(&mut self) -> usize {
        self.sent += 1;
        if (self.sent % 4 == 0 && !self.others.is_empty()) || self.victims.is_empty() {
            return self.others[rand::thread_rng().gen_range(0..self.others.len())];
        }
        self.victims[(self.sent - self.sent / 4 - 1) % self.victims.len()]
    }
}

/// Kills the first node under steady mail and measures the failover.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    o: &Options,
    base: usize,
    fake: &mut Fake,
    receiver: &Receiver,
    db: &Database,
    nodes: &mut Nodes,
    coverage: &mut Coverage,
    injected: &mut Injected,
) -> FailoverFigures {
    let n = o.accounts;
    tokio::time::sleep(Duration::from_secs(1)).await;
    gather(receiver, &mut Tally::default(), coverage);
    let victim = nodes.nodes[0].as_ref().expect("node 1").id.clone();
    let owners = db.owners().await;
    let mut victims: Vec<usize> = (base..base + n)
        .filter(|u| owners.get(u).and_then(|o| o.as_deref()) == Some(victim.as_str()))
        .collect();
    victims.shuffle(&mut rand::thread_rng());
    let victim_set: HashSet<usize> = victims.iter().copied().collect();
    let others = (base..base + n)
        .filter(|u| !victim_set.contains(u))
        .collect();
    let mut targets = Targets {
        victims: victims.clone(),
        others,
        sent: 0,
    };
    let doubles0 = fake.ask("stats").await["double_logins"]
        .as_u64()
        .unwrap_or(0);
    let mut mails = Vec::new();
    let mut seen = Seen::default();
    let (kill_us, stopped_us) = inject_through(
        o,
        fake,
        db,
        nodes,
        &victim,
        &victims,
        &mut targets,
        injected,
        &mut mails,
        &mut seen,
    )
    .await;
    let doubles = fake.ask("stats").await["double_logins"]
        .as_u64()
        .unwrap_or(0)
        - doubles0;
    let secs = |us: Option<u64>| us.map(|t| t.saturating_sub(kill_us) as f64 / 1e6);
    println!(
        "FAILOVER: kill -9 of {victim}, which owned {} of the {n} accounts; {} mails/s from {:.0} s before the kill \
         until {:.0} s after its accounts were watched again (3 in 4 to {victim}'s accounts in turn, the rest to the others)",
        victims.len(),
        o.failover_rate,
        BEFORE_KILL.as_secs_f64(),
        AFTER_BACK.as_secs_f64()
    );
    let show =
        |s: Option<f64>| s.map_or("never (within the limit)".into(), |s| format!("{s:.1} s"));
    println!(
        "  after the kill: {victim}'s accounts owned by the others (database) after {}; all {} watched again \
         (fake: a new connection of each logged in and went to IDLE) after {} [target ≤ 30 s]; \
         all {n} watching by the nodes' metrics after {}",
        show(secs(seen.claimed_us)),
        victims.len(),
        show(secs(seen.back_us)),
        show(secs(seen.all_watching_us)),
    );
    println!(
        "  logins of an account already logged in elsewhere (two watchers at once): {doubles}"
    );

    let (pushed_us, drained_us, tally) = wait_pushed(receiver, db, coverage, &mails).await;
    let repeats = coverage.report(&mails);
    let window = (kill_us, seen.back_us.unwrap_or(stopped_us));
    report_mail(
        &mails,
        injected,
        coverage,
        &repeats,
        &tally,
        window,
        stopped_us,
        &victim_set,
    );
    println!(
        "  every mail pushed {} after the kill; push queue empty {} after the kill",
        show(secs(pushed_us)),
        show(secs(drained_us))
    );
    FailoverFigures {
        accounts: victims.len(),
        back_s: secs(seen.back_us),
        repeats,
    }
}

/// Injects mail at `o.failover_rate` a second, kills the victim after
/// [`BEFORE_KILL`], and goes on until [`AFTER_BACK`] after its accounts
/// are watched again (or [`BACK_LIMIT`]); returns when the kill was and
/// when the mail stopped.
#[allow(clippy::too_many_arguments)]
async fn inject_through(
    o: &Options,
    fake: &mut Fake,
    db: &Database,
    nodes: &mut Nodes,
    victim: &str,
    victims: &[usize],
    targets: &mut Targets,
    injected: &mut Injected,
    mails: &mut Vec<(usize, u32)>,
    seen: &mut Seen,
) -> (u64, u64) {
    let ask_idle: String = victims.iter().map(|u| format!(" {u}")).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = (o.failover_rate / 100).max(1);
    let started = Instant::now();
    let mut kill_us = None;
    let mut ticks = 0u32;
    loop {
        tick.tick().await;
        ticks += 1;
        let mut lines = String::new();
        for _ in 0..per_tick {
            let account = targets.next();
            mails.push((account, injected.add(account)));
            lines.push_str(&format!("mail {account}\n"));
        }
        fake.send(&lines).await;
        let Some(killed) = kill_us else {
            if started.elapsed() >= BEFORE_KILL {
                kill_us = Some(now_us());
                nodes.kill(0).await;
            }
            continue;
        };
        let now = now_us();
        if let Some(back) = seen.back_us {
            if now >= back + AFTER_BACK.as_micros() as u64 {
                return (killed, now);
            }
        }
        if now >= killed + BACK_LIMIT.as_micros() as u64 {
            return (killed, now);
        }
        if ticks % LOOK_EVERY == 0 {
            look(fake, db, nodes, victim, &ask_idle, killed, o.accounts, seen).await;
        }
    }
}

/// Asks the fake, the database and the nodes whether the failover is done.
#[allow(clippy::too_many_arguments)]
async fn look(
    fake: &mut Fake,
    db: &Database,
    nodes: &Nodes,
    victim: &str,
    ask_idle: &str,
    killed: u64,
    n: usize,
    seen: &mut Seen,
) {
    if seen.back_us.is_none() {
        let idle = fake.ask(&format!("idle_after {killed}{ask_idle}")).await;
        if idle["idle"] == idle["of"] {
            seen.back_us = idle["last_us"]
                .as_u64()
                .filter(|t| *t > 0)
                .or(Some(now_us()));
        }
    }
    if seen.claimed_us.is_none() && db.owned_by(victim).await == 0 {
        seen.claimed_us = Some(now_us());
    }
    if seen.all_watching_us.is_none() && nodes.watching().await >= n {
        seen.all_watching_us = Some(now_us());
    }
}

/// Waits until every mail was pushed and the push queue is empty (or
/// [`PUSHED_LIMIT`]), then a little longer for late repeats; returns when
/// the last mail was first pushed and when the queue was seen empty.
async fn wait_pushed(
    receiver: &Receiver,
    db: &Database,
    coverage: &mut Coverage,
    mails: &[(usize, u32)],
) -> (Option<u64>, Option<u64>, Tally) {
    let mut tally = Tally::default();
    let end = Instant::now() + PUSHED_LIMIT;
    let mut drained_us = None;
    loop {
        gather(receiver, &mut tally, coverage);
        let all = mails.iter().all(|m| coverage.first(m).is_some());
        if drained_us.is_none() && db.queued_pushes().await == 0 {
            drained_us = Some(now_us());
        }
        if (all && drained_us.is_some()) || Instant::now() > end {
            break;
        }
        if !all {
            drained_us = None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything repeated late shows up here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    gather(receiver, &mut tally, coverage);
    let pushed = mails
        .iter()
        .map(|m| coverage.first(m))
        .collect::<Option<Vec<u64>>>();
    (pushed.and_then(|t| t.into_iter().max()), drained_us, tally)
}

/// Prints what happened to the failover's mail.
#[allow(clippy::too_many_arguments)]
fn report_mail(
    mails: &[(usize, u32)],
    injected: &Injected,
    coverage: &Coverage,
    r: &Repeats,
    tally: &Tally,
    (kill_us, back_us): (u64, u64),
    stopped_us: u64,
    victims: &HashSet<usize>,
) {
    let to_victim = mails.iter().filter(|(a, _)| victims.contains(a)).count();
    let after_kill = mails
        .iter()
        .filter(|m| injected.at_us[*m] >= kill_us)
        .count();
    let in_gap: HashSet<usize> = mails
        .iter()
        .filter(|m| victims.contains(&m.0) && (kill_us..back_us).contains(&injected.at_us[*m]))
        .map(|m| m.0)
        .collect();
    let mut delays: Vec<f64> = mails
        .iter()
        .filter_map(|m| Some(coverage.first(m)?.saturating_sub(injected.at_us[m]) as f64 / 1e6))
        .collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    let late: Vec<&(usize, u32)> = mails
        .iter()
        .filter(|m| {
            coverage
                .first(m)
                .is_some_and(|t| t.saturating_sub(injected.at_us[*m]) > LATE.as_micros() as u64)
        })
        .collect();
    let late_accounts: HashSet<usize> = late.iter().map(|m| m.0).collect();
    println!(
        "  {} mails injected over {:.1} s ({to_victim} to the killed node's accounts, {after_kill} after the kill): \
         {} missed [target 0]; injection → first push p50 {:.2} s, p99 {:.1} s, max {:.1} s",
        r.mails,
        (stopped_us - kill_us) as f64 / 1e6 + BEFORE_KILL.as_secs_f64(),
        r.missed,
        quantile(&delays, 0.5),
        quantile(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  pushed more than {} s after injection: {} mails of {} accounts",
        LATE.as_secs(),
        late.len(),
        late_accounts.len()
    );
    println!(
        "  {} of the {} killed node's accounts got mail between the kill and the last account watched again",
        in_gap.len(),
        victims.len()
    );
    println!(
        "  repeated (a mail told of by more than one push): {} as the push service received them; after Topic collapse: \
         {} for a phone online throughout (a repeat is replaced only if it came, with the same Topic, before the push it \
         repeats was answered, i.e. while the push service still held it), {} for a phone offline from before the first \
         push until after the repeat (a repeat with the same Topic replaces the waiting one; only repeats without it count)",
        r.as_sent, r.online, r.offline
    );
    if !r.gaps_ms.is_empty() {
        println!(
            "  repeats came {:.0} ms (min), {:.0} ms (median), {:.0} ms (max) after the mail's first push",
            r.gaps_ms[0],
            quantile(&r.gaps_ms, 0.5),
            r.gaps_ms[r.gaps_ms.len() - 1]
        );
    }
    let (missed, extra, _) = tally.check(&per_account(mails));
    println!(
        "  cross-check by the pushes' counts per account: {missed} missed, {extra} extra; pushes listing no UID: {}",
        coverage.unplaced
    );
}
