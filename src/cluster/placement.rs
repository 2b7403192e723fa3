//! Which node should watch which account: rendezvous hashing over the live
//! nodes. Every node computes the same answer from the same list of live
//! nodes, so they agree without talking; when a node joins or leaves, only
//! the accounts it gains or loses move. Pure code.

/// FNV-1a over the node id, a NUL, and the account id: stable across
/// versions and platforms, which a rolling upgrade needs.
fn score(node: &str, account: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(account.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly: finish with a multiply-xorshift.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// The node among `live` that should own `account` (None without nodes).
pub fn preferred<'a>(live: &'a [String], account: &str) -> Option<&'a str> {
    live.iter()
        .max_by_key(|node| (score(node, account), node.as_str()))
        .map(String::as_str)
}

/// What one node should do in one round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Orphaned accounts this node should claim.
    pub claim: Vec<String>,
    /// Accounts this node owns that another live node should have: stop
    /// watching them and release them.
    pub hand_over: Vec<String>,
}

/// Plans a round for node `me`: `ownership` lists every account with its
/// live owner (None: orphaned); `live` the nodes holding a lease (`me`
/// among them). At most `max_hand_over` accounts are handed over per
/// round, so that a node joining does not make the others drop everything
/// at once.
pub fn plan(
    me: &str,
    live: &[String],
    ownership: &[(String, Option<String>)],
    max_hand_over: usize,
) -> Plan {
    let mut plan = Plan::default();
    for (account, owner) in ownership {
        let want = preferred(live, account) == Some(me);
        match owner.as_deref() {
            None if want => plan.claim.push(account.clone()),
            Some(owner) if owner == me && !want && plan.hand_over.len() < max_hand_over => {
                plan.hand_over.push(account.clone());
            }
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accounts_spread_evenly_and_only_a_leaving_node_s_accounts_move() {
        let three = nodes(&["n1", "n2", "n3"]);
        let accounts: Vec<String> = (0..3000).map(|i| format!("acct{i}")).collect();
        let mut per_node = [0usize; 3];
        for account in &accounts {
            let owner = preferred(&three, account).unwrap();
            per_node[three.iter().position(|n| n == owner).unwrap()] += 1;
        }
        for count in per_node {
            assert!((900..=1100).contains(&count), "{per_node:?}");
        }
        let two = nodes(&["n1", "n3"]);
        for account in &accounts {
            let before = preferred(&three, account).unwrap();
            let after = preferred(&two, account).unwrap();
            if before != "n2" {
                assert_eq!(before, after, "{account} moved needlessly");
            }
        }
    }

    #[test]
    fn a_node_claims_its_orphans_and_hands_over_what_another_should_have() {
        let live = nodes(&["n1", "n2"]);
        let accounts: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let ownership: Vec<(String, Option<String>)> = accounts
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    if a.ends_with('0') {
                        Some("n1".into())
                    } else {
                        None
                    },
                )
            })
            .collect();
        let plan = plan("n1", &live, &ownership, usize::MAX);
        for account in &plan.claim {
            assert_eq!(preferred(&live, account), Some("n1"));
            assert!(!account.ends_with('0'));
        }
        for account in &plan.hand_over {
            assert_eq!(preferred(&live, account), Some("n2"));
            assert!(account.ends_with('0'));
        }
        let mine = accounts
            .iter()
            .filter(|a| !a.ends_with('0') && preferred(&live, a) == Some("n1"))
            .count();
        assert_eq!(plan.claim.len(), mine);
        let limited = super::plan("n1", &live, &ownership, 1);
        assert!(limited.hand_over.len() <= 1);
    }

    #[test]
    fn without_live_nodes_nobody_is_preferred() {
        assert_eq!(preferred(&[], "a"), None);
    }
}
