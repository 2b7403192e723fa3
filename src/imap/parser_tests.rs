//! Transcript tests for the framer and parser together: each transcript is
//! framed whole and split at every byte boundary, and must give the same
//! responses; random and truncated input must never panic.

use super::*;
use crate::imap::framer::Framer;
use crate::imap::MAX_SERVER_TEXT;

/// Frames and parses `input` delivered in two pieces split at `cut`.
fn run(input: &[u8], cut: usize) -> Vec<Response> {
    let mut framer = Framer::new(1 << 20);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in [&input[..cut], &input[cut..]] {
        buf.extend_from_slice(piece);
        while let Some(n) = framer.next_frame(&buf).unwrap() {
            let frame: Vec<u8> = buf.drain(..n).collect();
            out.push(parse_response(&frame).unwrap());
        }
    }
    assert!(buf.is_empty());
    out
}

/// Parses the transcript whole and at every split, checking they agree.
fn parse_all(input: &[u8]) -> Vec<Response> {
    let whole = run(input, 0);
    for cut in 1..=input.len() {
        assert_eq!(run(input, cut), whole, "split at {cut}");
    }
    whole
}

fn untagged(r: &Response) -> &Untagged {
    match r {
        Response::Untagged(u) => u,
        other => panic!("not untagged: {other:?}"),
    }
}

#[test]
fn greeting_and_capability() {
    let r = parse_all(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n\
* CAPABILITY IMAP4rev1 IDLE NOTIFY\r\n",
    );
    assert_eq!(
        untagged(&r[0]),
        &Untagged::Condition {
            status: Status::Ok,
            code: Some(Code::Capability(
                "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
                    .split(' ')
                    .map(String::from)
                    .collect()
            )),
            text: "Dovecot ready.".into()
        }
    );
    assert_eq!(
        untagged(&r[1]),
        &Untagged::Capability(vec!["IMAP4rev1".into(), "IDLE".into(), "NOTIFY".into()])
    );
}

#[test]
fn tagged_with_codes() {
    let r = parse_all(
        b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n\
a2 OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).\r\n\
a3 BAD Error in IMAP command\r\n\
a4 NO [UNAVAILABLE] Try later\r\n\
a5 OK [CAPABILITY IMAP4rev1 NOTIFY] Logged in\r\n\
a6 OK\r\n",
    );
    let tagged: Vec<_> = r
        .iter()
        .map(|r| match r {
            Response::Tagged {
                tag,
                status,
                code,
                text,
            } => (tag.as_str(), *status, code.clone(), text.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        tagged[0],
        (
            "a1",
            Status::No,
            Some(Code::AuthenticationFailed),
            "Authentication failed."
        )
    );
    assert_eq!(tagged[1].2, Some(Code::ReadOnly));
    assert_eq!(
        tagged[2],
        ("a3", Status::Bad, None, "Error in IMAP command")
    );
    assert_eq!(tagged[3].2, Some(Code::Unavailable));
    assert_eq!(
        tagged[4].2,
        Some(Code::Capability(vec!["IMAP4rev1".into(), "NOTIFY".into()]))
    );
    assert_eq!(tagged[5], ("a6", Status::Ok, None, ""));
}

#[test]
fn select_responses() {
    let r = parse_all(
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n\
* 3 EXISTS\r\n\
* 0 RECENT\r\n\
* OK [UIDVALIDITY 1700000000] UIDs valid\r\n\
* OK [UIDNEXT 4] Predicted next UID\r\n\
* OK [HIGHESTMODSEQ 12345678901] Highest\r\n\
* OK [NOMODSEQ] Sorry\r\n\
* OK [URLMECH INTERNAL] x\r\n\
* 2 EXPUNGE\r\n",
    );
    assert_eq!(untagged(&r[0]), &Untagged::Other("FLAGS".into()));
    assert!(matches!(
        untagged(&r[1]),
        Untagged::Condition { code: Some(Code::Other(c)), .. } if c == "PERMANENTFLAGS"
    ));
    assert_eq!(untagged(&r[2]), &Untagged::Exists(3));
    assert_eq!(untagged(&r[3]), &Untagged::Recent(0));
    let codes: Vec<_> = r[4..9]
        .iter()
        .map(|r| match untagged(r) {
            Untagged::Condition { code, .. } => code.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            Some(Code::UidValidity(1700000000)),
            Some(Code::UidNext(4)),
            Some(Code::HighestModSeq(12345678901)),
            Some(Code::NoModSeq),
            Some(Code::Other("URLMECH".into())),
        ]
    );
    assert_eq!(untagged(&r[9]), &Untagged::Expunge(2));
}

#[test]
fn fetch_with_literals_and_sections() {
    let r = parse_all(
        b"* 12 FETCH (UID 42 RFC822.SIZE 2048 FLAGS (\\Seen $Junk) \
BODY[HEADER.FIELDS (FROM SUBJECT)] {28}\r\nFrom: a@b.c\r\nSubject: Hi\r\n\r\n \
BODY[]<0> {5+}\r\nHello PREVIEW \"a \\\"quoted\\\" text\" MODSEQ (77))\r\n\
* 13 FETCH (UID 43 PREVIEW NIL)\r\n\
* 14 FETCH (PREVIEW (FUZZY {3}\r\nabc))\r\n",
    );
    let Untagged::Fetch { seq, items } = untagged(&r[0]) else {
        panic!()
    };
    assert_eq!(*seq, 12);
    let keys: Vec<_> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "UID",
            "RFC822.SIZE",
            "FLAGS",
            "BODY[HEADER.FIELDS (FROM SUBJECT)]",
            "BODY[]<0>",
            "PREVIEW",
            "MODSEQ"
        ]
    );
    assert_eq!(items[0].1, Value::Number(42));
    assert_eq!(
        items[2].1,
        Value::List(vec![
            Value::Atom("\\Seen".into()),
            Value::Atom("$Junk".into())
        ])
    );
    assert_eq!(
        items[3].1,
        Value::Str(b"From: a@b.c\r\nSubject: Hi\r\n\r\n".to_vec())
    );
    assert_eq!(items[4].1, Value::Str(b"Hello".to_vec()));
    assert_eq!(items[5].1, Value::Str(b"a \"quoted\" text".to_vec()));
    assert_eq!(items[6].1, Value::List(vec![Value::Number(77)]));
    let Untagged::Fetch { items, .. } = untagged(&r[1]) else {
        panic!()
    };
    assert_eq!(items[1], ("PREVIEW".into(), Value::Nil));
    let Untagged::Fetch { items, .. } = untagged(&r[2]) else {
        panic!()
    };
    assert_eq!(
        items[0].1,
        Value::List(vec![
            Value::Atom("FUZZY".into()),
            Value::Str(b"abc".to_vec())
        ])
    );
}

#[test]
fn status_search_enabled_vanished_bye_continuation() {
    let r = parse_all(
        b"* STATUS \"Sent Items\" (MESSAGES 5 UIDNEXT 9 UIDVALIDITY 77 HIGHESTMODSEQ 3)\r\n\
* STATUS {5}\r\nInbox (UIDNEXT 2)\r\n\
* STATUS &AOQ- (MESSAGES 0)\r\n\
* SEARCH 2 4 9\r\n\
* SEARCH\r\n\
* SEARCH 1 2 (MODSEQ 917162500)\r\n\
* ENABLED CONDSTORE QRESYNC\r\n\
* VANISHED (EARLIER) 300:310,405\r\n\
* VANISHED 7\r\n\
* BYE Server shutting down.\r\n\
+ idling\r\n\
+\r\n\
* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
    );
    assert_eq!(
        untagged(&r[0]),
        &Untagged::Status {
            mailbox: b"Sent Items".to_vec(),
            items: vec![
                ("MESSAGES".into(), 5),
                ("UIDNEXT".into(), 9),
                ("UIDVALIDITY".into(), 77),
                ("HIGHESTMODSEQ".into(), 3)
            ]
        }
    );
    assert_eq!(
        untagged(&r[1]),
        &Untagged::Status {
            mailbox: b"Inbox".to_vec(),
            items: vec![("UIDNEXT".into(), 2)]
        }
    );
    assert!(matches!(untagged(&r[2]), Untagged::Status { mailbox, .. } if mailbox == b"&AOQ-"));
    let set = |t: &[u8]| UidSet::parse(t, 10).unwrap();
    assert_eq!(untagged(&r[3]), &Untagged::Search(set(b"2,4,9")));
    assert_eq!(untagged(&r[4]), &Untagged::Search(UidSet::new()));
    assert_eq!(untagged(&r[5]), &Untagged::Search(set(b"1:2")));
    assert_eq!(
        untagged(&r[6]),
        &Untagged::Enabled(vec!["CONDSTORE".into(), "QRESYNC".into()])
    );
    assert_eq!(
        untagged(&r[7]),
        &Untagged::Vanished {
            earlier: true,
            uids: set(b"300:310,405")
        }
    );
    assert_eq!(
        untagged(&r[8]),
        &Untagged::Vanished {
            earlier: false,
            uids: set(b"7")
        }
    );
    assert_eq!(
        untagged(&r[9]),
        &Untagged::Condition {
            status: Status::Bye,
            code: None,
            text: "Server shutting down.".into()
        }
    );
    assert_eq!(r[10], Response::Continuation("idling".into()));
    assert_eq!(r[11], Response::Continuation("".into()));
    assert!(matches!(untagged(&r[12]), Untagged::List { .. }));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    for bad in [
        &b"\r\n"[..],
        b"* 1 FETCH UID\r\n",
        b"* 1 FETCH (UID 1\r\n",
        b"* 1 FETCH (BODY[] {10}\r\nabc)\r\n",
        b"* 1 FETCH (BODY[HEADER\r\n",
        b"* 1 FETCH (X \"abc\r\n",
        b"* STATUS\r\n",
        b"a1 MAYBE\r\n",
        b"a1\r\n",
    ] {
        assert!(
            parse_response(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Deep nesting is refused rather than recursing without bound.
    let mut deep = b"* 1 FETCH ".to_vec();
    deep.extend(std::iter::repeat_n(b'(', 10_000));
    deep.extend_from_slice(b"\r\n");
    assert!(parse_response(&deep).is_err());
}

#[test]
fn random_and_truncated_input_never_panics() {
    // A small xorshift generator keeps the test deterministic without a dependency.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"* 0123456789 ()[]{}<>+\"\\\r\nOKNOBADFETCHUIDBODYNILSTATUSEXISTS";
    let samples: &[&[u8]] = &[
        b"* 1 FETCH (UID 5 BODY[HEADER.FIELDS (FROM)] {4}\r\nabcd FLAGS (\\Seen))\r\n",
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE] done\r\n",
        b"* STATUS \"x\" (UIDNEXT 5)\r\n",
    ];
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 2 == 0 {
            let len = (next() % 80) as usize;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        } else {
            let sample = samples[(next() % samples.len() as u64) as usize];
            let mut v = sample[..(next() as usize % (sample.len() + 1))].to_vec();
            if let Some(b) = v.last_mut() {
                *b = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            v
        };
        let _ = parse_response(&input);
        let _ = crate::imap::command::decode_utf7(&input);
        let mut framer = Framer::new(1 << 16);
        let mut buf = input;
        while let Ok(Some(n)) = framer.next_frame(&buf) {
            let frame: Vec<u8> = buf.drain(..n).collect();
            let _ = parse_response(&frame);
        }
    }
}

#[test]
fn list_esearch_and_literal8() {
    let input = b"* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n\
* LIST (\\Noselect) NIL {5}\r\nA\"b c\r\n\
* ESEARCH (TAG \"L4\") UID MIN 2 ALL 2:4,9 COUNT 4\r\n\
* ESEARCH (TAG \"L5\") UID\r\n\
* 3 FETCH (UID 9 BINARY[1]<0> ~{4}\r\nab\r\n BINARY.SIZE[1] 40)\r\n";
    let out = parse_all(input);
    assert_eq!(
        untagged(&out[0]),
        &Untagged::List {
            attributes: vec!["\\HasNoChildren".into(), "\\Sent".into()],
            delimiter: Some(b'/'),
            mailbox: b"Sent".to_vec(),
        }
    );
    assert_eq!(
        untagged(&out[1]),
        &Untagged::List {
            attributes: vec!["\\Noselect".into()],
            delimiter: None,
            mailbox: b"A\"b c".to_vec(),
        }
    );
    assert_eq!(
        untagged(&out[2]),
        &Untagged::Esearch {
            uid: true,
            all: UidSet::parse(b"2:4,9", 10),
            items: vec![
                ("MIN".into(), Value::Number(2)),
                ("COUNT".into(), Value::Number(4)),
            ],
        }
    );
    assert_eq!(
        untagged(&out[3]),
        &Untagged::Esearch {
            uid: true,
            all: None,
            items: vec![]
        }
    );
    assert_eq!(
        untagged(&out[4]),
        &Untagged::Fetch {
            seq: 3,
            items: vec![
                ("UID".into(), Value::Number(9)),
                ("BINARY[1]<0>".into(), Value::Str(b"ab\r\n".to_vec())),
                ("BINARY.SIZE[1]".into(), Value::Number(40)),
            ],
        }
    );
}

#[test]
fn send_path_responses() {
    let r = parse_all(
        b"* GENURLAUTH \"imap://alice@127.0.0.1:143/Sent;UIDVALIDITY=7/;UID=3;urlauth=submit+alice:internal:91354a473744909de610943775f92038\"\r\n\
L4 OK [APPENDUID 1700000000 42] Append completed.\r\n\
* 3 FETCH (UID 9 BODY[2.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n BODY[2]<0> {3}\r\nabc)\r\n\
* 1 FETCH (UID 5 BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)(\"application\" \"octet-stream\" (\"name\" \"a.bin\") NIL NIL \"base64\" 280000 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n",
    );
    assert_eq!(
        untagged(&r[0]),
        &Untagged::GenUrlAuth(vec![b"imap://alice@127.0.0.1:143/Sent;UIDVALIDITY=7/;UID=3;urlauth=submit+alice:internal:91354a473744909de610943775f92038".to_vec()])
    );
    assert!(matches!(
        &r[1],
        Response::Tagged {
            code: Some(Code::AppendUid {
                uidvalidity: 1700000000,
                uid: 42
            }),
            ..
        }
    ));
    let Untagged::Fetch { items, .. } = untagged(&r[2]) else {
        panic!("not a fetch")
    };
    assert_eq!(items[1].0, "BODY[2.MIME]");
    assert_eq!(items[2], ("BODY[2]<0>".into(), Value::Str(b"abc".to_vec())));
    let Untagged::Fetch { items, .. } = untagged(&r[3]) else {
        panic!("not a fetch")
    };
    assert!(matches!(items[1].1, Value::List(_)));
}

#[test]
fn urlfetch_responses() {
    let r = parse_all(
        b"* URLFETCH \"imap://a@h:1/INBOX/;UID=1;urlauth=user+a:internal:00\" {5}\r\nhello \"imap://a@h:1/INBOX/;UID=2\" NIL\r\n",
    );
    assert_eq!(
        untagged(&r[0]),
        &Untagged::UrlFetch(vec![
            (
                b"imap://a@h:1/INBOX/;UID=1;urlauth=user+a:internal:00".to_vec(),
                Some(b"hello".to_vec())
            ),
            (b"imap://a@h:1/INBOX/;UID=2".to_vec(), None),
        ])
    );
}

#[test]
fn numbers_become_compact_sets_and_bad_sets_are_refused() {
    let r = parse_all(
        b"* SEARCH 9 3 4 5 2 (MODSEQ 77)\r\n* ESEARCH UID ALL 1:*\r\n* VANISHED 5,1:3\r\n",
    );
    let Untagged::Search(set) = untagged(&r[0]) else {
        panic!("not a search")
    };
    assert_eq!(set.iter().collect::<Vec<_>>(), [2, 3, 4, 5, 9]);
    assert_eq!(set.ranges(), 2);
    let Untagged::Esearch { all: Some(all), .. } = untagged(&r[1]) else {
        panic!("no ALL")
    };
    assert_eq!((all.ranges(), all.count()), (1, u64::from(u32::MAX)));
    let Untagged::Vanished { uids, .. } = untagged(&r[2]) else {
        panic!("not vanished")
    };
    assert_eq!(uids.iter().collect::<Vec<_>>(), [1, 2, 3, 5]);
    assert!(parse_response(b"* VANISHED (EARLIER) 1:x\r\n").is_err());
    assert!(parse_response(b"* ESEARCH UID ALL 3:\r\n").is_err());
}

#[test]
fn what_one_frame_yields_is_bounded() {
    // Texts are cut on a character boundary where they are parsed.
    let long = format!("* BYE {}\r\n", "\u{e9}".repeat(10_000));
    let Ok(Response::Untagged(Untagged::Condition { text, .. })) = parse_response(long.as_bytes())
    else {
        panic!("not a condition")
    };
    assert!(text.len() <= MAX_SERVER_TEXT && text.len() >= MAX_SERVER_TEXT - 1);
    // A frame of tiny tokens is refused rather than taking 30 times its size.
    let many = format!(
        "* 1 FETCH (FLAGS ({}))\r\n",
        "a ".repeat(super::super::lexer::MAX_TOKENS)
    );
    assert!(parse_response(many.as_bytes()).is_err());
    let few = format!("* 1 FETCH (FLAGS ({}))\r\n", "a ".repeat(1000));
    assert!(parse_response(few.as_bytes()).is_ok());
}
