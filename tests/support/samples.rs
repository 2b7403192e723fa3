//! Real-world-shaped test messages for the read API (and its benchmark).
#![allow(dead_code)]

use base64::Engine;

/// Deterministic pseudo-random bytes (an attachment's content).
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn b64_lines(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// ISO-8859-1 quoted-printable body, RFC 2047 subject and sender.
pub fn latin1() -> Vec<u8> {
    b"From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <jm@example.org>\r\n\
To: alice@test.local\r\n\
Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n\
Message-ID: <latin1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Sch=F6ne Gr=FC=DFe und einen sch=F6nen Tag!\r\n"
        .to_vec()
}

/// multipart/alternative, UTF-8, a reply.
pub fn alternative() -> Vec<u8> {
    "From: \"Zoë Ŝ\" <zoe@example.org>\r\n\
To: alice@test.local, \"Bob\" <bob@example.org>\r\n\
Cc: carol@example.org\r\n\
Subject: =?UTF-8?B?UmU6IMOcYmVyIGRlbiBQbGFu?=\r\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <alt@example.org>\r\n\
In-Reply-To: <latin1@example.org>\r\n\
References: <latin1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"ALT\"\r\n\
\r\n\
--ALT\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Plain text: ünïcödé ✓\r\n\
--ALT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>HTML text: <b>ünïcödé</b></p></body></html>\r\n\
--ALT--\r\n"
        .as_bytes()
        .to_vec()
}

/// multipart/mixed: text, a large binary attachment, and a forwarded
/// message/rfc822 that itself has a text part.
pub fn mixed(attachment: &[u8]) -> Vec<u8> {
    format!(
        "From: bob@example.org\r\n\
To: alice@test.local\r\n\
Subject: Report with attachment\r\n\
Date: Wed, 3 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <mixed@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"MIX\"\r\n\
\r\n\
--MIX\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
See the attached report.\r\n\
--MIX\r\n\
Content-Type: application/octet-stream; name=\"report.bin\"\r\n\
Content-Disposition: attachment; filename=\"report.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
{}\r\n\
--MIX\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: carol@example.org\r\n\
Subject: Inner\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Inner text.\r\n\
--MIX--\r\n",
        b64_lines(attachment)
    )
    .into_bytes()
}

/// Broken in many ways: a header without colon, an unterminated multipart,
/// invalid base64, a bogus charset.
pub fn malformed() -> Vec<u8> {
    b"From: <<<broken\r\n\
This line is not a header\r\n\
Subject: =?bogus?Q?=ZZ?= malformed\r\n\
Content-Type: multipart/mixed; boundary=\"NEVER\"\r\n\
\r\n\
--NEVER\r\n\
Content-Type: text/plain; charset=x-unknown-charset\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
!!!not base64@@@\r\n\
--NEVER\r\n\
Content-Type: text/plain\r\n\
\r\n\
truncated without closing boundary"
        .to_vec()
}

/// An HTML-only newsletter of about `size` bytes, quoted-printable.
pub fn newsletter(size: usize) -> Vec<u8> {
    let mut html = String::from("<html><head><style>p{color:#333;font-family:Helvetica,Arial,sans-serif}</style></head><body><table width=\"100%\">");
    let mut i = 0;
    while html.len() < size {
        html.push_str(&format!(
            "<tr><td style=\"padding:12px 24px;border-bottom:1px solid #eeeeee\"><a href=\"https://news.example.com/track?id={i}&amp;u=alice\"><img src=\"https://news.example.com/img/{i}.png\" width=\"120\" height=\"80\" alt=\"\"></a><p style=\"margin:0 0 8px 0;font-size:14px;line-height:20px\">Story {i}: {}.</p></td></tr>\r\n",
            words(14, i as u32 + 50)
        ));
        i += 1;
    }
    html.push_str("</table></body></html>");
    let mut out = String::from(
        "From: News <news@example.com>\r\nTo: alice@test.local\r\nSubject: Weekly newsletter\r\n\
Date: Thu, 4 Jan 2024 10:00:00 +0000\r\nMessage-ID: <news@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    // Soft line breaks keep lines under 76 characters.
    for line in html.split("\r\n") {
        let qp = line.replace('=', "=3D");
        let mut rest = qp.as_str();
        while rest.len() > 72 {
            let mut cut = 72;
            while !rest.is_char_boundary(cut)
                || rest[..cut].ends_with('=')
                || rest[..cut].ends_with("=3")
            {
                cut -= 1;
            }
            out.push_str(&rest[..cut]);
            out.push_str("=\r\n");
            rest = &rest[cut..];
        }
        out.push_str(rest);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

const WORDS: &[&str] = &[
    "meeting", "report", "budget", "project", "deadline", "review", "draft", "client", "invoice",
    "schedule", "update", "question", "team", "office", "travel", "contract", "design", "release",
    "customer", "support", "training", "numbers", "quarter", "plan", "feedback", "launch",
    "agenda", "the", "a", "we", "should", "could", "will", "need", "to", "and", "for", "with",
    "about", "on", "next", "last", "week", "Monday", "Friday", "morning", "please", "thanks",
    "check", "send", "attached", "notes", "call", "tomorrow", "today", "soon", "issue", "fix",
    "test", "results",
];

/// `count` pseudo-random words.
pub fn words(count: usize, seed: u32) -> String {
    noise(count, seed)
        .iter()
        .map(|b| WORDS[*b as usize % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short everyday message.
pub fn simple(n: usize) -> Vec<u8> {
    let seed = n as u32 + 1000;
    format!(
        "From: \"Sender {n}\" <sender{n}@example.org>\r\nTo: alice@test.local\r\n\
Subject: Message number {n}: {}\r\nDate: Fri, 5 Jan 2024 10:{:02}:00 +0000\r\n\
Message-ID: <m{n}.{seed}@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\
Hello Alice, this is message {n}. {}\r\n\r\n{}\r\n\r\nBest,\r\nSender {n}\r\n",
        words(4, seed),
        n % 60,
        words(60, seed + 1),
        words(80, seed + 2)
    )
    .into_bytes()
}
