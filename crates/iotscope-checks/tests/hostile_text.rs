//! Whatever a device sends, the text handling of the checks neither panics
//! nor loops (issue 12 item 7): random bytes, and text full of multi-byte
//! characters at every offset, through every reader of device text.

use iotscope_checks::auth::{login_worked, parse_challenges};
use iotscope_checks::http::{has_password_field, panel_of, response_end};
use iotscope_checks::telnet::{classify, names_password, Nvt, Quiet, Stage};
use proptest::prelude::*;

/// Bytes biased towards what parsers look for: prompts, tags, quotes,
/// CR LF, telnet IAC, and UTF-8 lead bytes cut off mid-character.
fn device_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"login: ".to_vec()),
        Just(b"Password:".to_vec()),
        Just("密码：".as_bytes().to_vec()),
        Just("é".as_bytes()[..1].to_vec()),
        Just("€".as_bytes()[..2].to_vec()),
        Just(b"\r\n".to_vec()),
        Just(vec![255, 250]),
        Just(vec![255, 253]),
        Just(b"<input type=password".to_vec()),
        Just(b"<form action=".to_vec()),
        Just(b"<title>".to_vec()),
        Just(b"Digest realm=\"".to_vec()),
        Just(b", ".to_vec()),
        Just(b" # ".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn telnet_screens_take_any_bytes(bytes in device_bytes()) {
        for stage in [Stage::Greeting, Stage::AfterUser, Stage::AfterPassword] {
            for quiet in [Quiet::Arriving, Quiet::Settled, Quiet::Final] {
                let _ = classify(&bytes, stage, quiet);
            }
        }
        let _ = names_password(&bytes);
        // Fed in any split, the NVT keeps every data byte that is not a
        // command and never grows its state beyond the input.
        let mut nvt = Nvt::default();
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        for part in bytes.chunks(3) {
            nvt.feed(part, &mut data, &mut reply);
        }
        prop_assert!(data.len() <= bytes.len());
        prop_assert!(reply.len() <= bytes.len() * 3);
    }

    #[test]
    fn web_text_takes_any_bytes(bytes in device_bytes()) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = panel_of(&text);
        let _ = has_password_field(&text.to_ascii_lowercase());
        let _ = parse_challenges([text.as_str()]);
        let _ = login_worked(200, false, Some(&text), &text);
        if let Some(end) = response_end(&bytes, false) {
            prop_assert!(end <= bytes.len());
        }
    }
}
