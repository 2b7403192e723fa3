//! Properties of UID sets, modified UTF-7, state tokens, SASL error
//! challenges and the address claims of ID tokens, checked on
//! generated inputs (the fuzz targets check the same on mutated ones).

use proptest::prelude::*;

use super::*;

/// Sorted UIDs without repeats, in runs so that ranges occur.
fn uids() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec((any::<u32>(), 0u32..5), 0..40).prop_map(|runs| {
        let mut out: Vec<u32> = runs
            .into_iter()
            .flat_map(|(start, len)| (0..len).map_while(move |i| start.checked_add(i)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    })
}

proptest! {
    #[test]
    fn uid_sets_expand_to_what_they_were_made_of(uids in uids()) {
        let set = uid_set(&uids);
        prop_assert_eq!(expand_uid_set(&set, uids.len()), Some(uids.clone()));
        // Compact: one piece per run of consecutive UIDs.
        let runs = uids.windows(2).filter(|w| w[0].checked_add(1) != Some(w[1])).count()
            + usize::from(!uids.is_empty());
        let pieces = if set.is_empty() { 0 } else { set.split(',').count() };
        prop_assert_eq!(pieces, runs);
    }

    #[test]
    fn uid_sets_stay_within_their_limit(set in "[0-9:,]{0,40}", limit in 0usize..1000) {
        if let Some(uids) = expand_uid_set(&set, limit) {
            prop_assert!(uids.len() <= limit);
            prop_assert!(uids.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn utf7_round_trips(name in any::<String>()) {
        let encoded = utf7_encode(&name);
        prop_assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)), "{encoded:?}");
        prop_assert_eq!(utf7_decode(encoded.as_bytes()), Some(name));
    }

    #[test]
    fn utf7_decoding_is_canonical(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Some(name) = utf7_decode(&raw) {
            let again = utf7_encode(&name);
            prop_assert_eq!(utf7_decode(again.as_bytes()), Some(name));
        }
    }

    #[test]
    fn utf7_decodes_what_looks_like_it(raw in "[A-Za-z0-9&+,\\-. ]{0,40}") {
        if let Some(name) = utf7_decode(raw.as_bytes()) {
            prop_assert_eq!(utf7_decode(utf7_encode(&name).as_bytes()), Some(name));
        }
    }

    #[test]
    fn state_tokens_round_trip(
        uidvalidity in any::<u32>(),
        uidnext in 1u32..,
        modseq in any::<u64>(),
        uids in prop::option::of(uids()),
    ) {
        let uids = uids.map(|u| u.into_iter().filter(|&x| x < uidnext).collect::<UidSet>());
        let token = StateToken { uidvalidity, uidnext, modseq, uids };
        prop_assert_eq!(StateToken::decode(&token.encode()), Some(token));
    }

    #[test]
    fn state_tokens_from_clients_decode_to_their_own_form(
        raw in "1\\.[0-9]{1,11}\\.[0-9]{1,11}\\.[0-9]{1,21}(\\.[0-9:,]{0,30})?",
    ) {
        if let Some(token) = StateToken::decode(&raw) {
            prop_assert_eq!(StateToken::decode(&token.encode()), Some(token));
        }
    }
}

proptest! {
    #[test]
    fn sasl_challenges_keep_short_clean_fields(
        status in any::<String>(),
        scope in any::<String>(),
        number in any::<u16>(),
        server in any::<String>(),
    ) {
        let json = serde_json::json!({"status": status, "scope": scope, "schemes": number});
        let text = base64_encode(json.to_string().as_bytes());
        let challenge = sasl_challenge(&text).expect("a JSON object");
        prop_assert_eq!(challenge.schemes.clone(), Some(number.to_string()));
        for (field, sent) in [(&challenge.status, &status), (&challenge.scope, &scope)] {
            let field = field.as_deref().expect("present");
            prop_assert!(field.len() <= MAX_CHALLENGE_FIELD);
            prop_assert!(!field.chars().any(char::is_control));
            // What is kept is the start of what was sent, cleaned.
            prop_assert!(crate::text::clean(sent).starts_with(field));
        }
        let refusal = refusal_text(&server, Some(&challenge));
        prop_assert!(refusal.len() <= crate::text::MAX_SERVER_TEXT);
        let summary = challenge.summary().expect("status and scope");
        prop_assert!(refusal.ends_with(&format!("({summary})")), "{}", refusal);
    }
}

proptest! {
    #[test]
    fn id_tokens_give_an_address_or_nothing(
        email in any::<String>(),
        other in any::<String>(),
        junk in any::<String>(),
    ) {
        let claims = serde_json::json!({"email": email, "preferred_username": other});
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string(),
        );
        for jwt in [format!("h.{payload}.s"), junk.clone(), format!("h.{junk}.s")] {
            if let Some(address) = email_claim(&jwt) {
                prop_assert!(address.contains('@') && address.len() <= 254);
                prop_assert!(!address.contains(char::is_whitespace));
                prop_assert!(address == email || address == other);
            }
        }
    }
}
