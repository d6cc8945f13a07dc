//! Fuzzes the one way out for outside text (src/outside.rs): whatever the bytes, no escaped
//! field, cleaned line, annotation, summary cell or JUnit text may panic, contain a raw line
//! break where it must not (or a summary cell an unescaped `|`), start a workflow command the GitHub Actions runner would act on,
//! carry a hidden character, a character XML forbids, or a registered secret.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/outside.rs"]
mod outside;

use outside::{annotation, clean, markdown_cell, runner_commands, xml_text, Outside};

const SECRET: &str = "fuzz-secret-token-0123456789";

fuzz_target!(|data: &[u8]| {
    outside::register_secret(SECRET);
    let text = String::from_utf8_lossy(data);
    // Sometimes with the secret in the middle, so the redaction is exercised.
    let half = text.len() / 2;
    let half = (0..=half).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let with_secret = format!("{}{SECRET}{}", &text[..half], &text[half..]);
    for input in [text.as_ref(), with_secret.as_str()] {
        let o = Outside::new(input);
        let shown = o.to_string();
        assert!(!shown.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']), "{shown:?}");
        assert!(runner_commands(&shown).is_empty(), "{shown:?}");
        assert!(!shown.chars().any(outside::is_hidden), "{shown:?}");
        assert!(shown.chars().count() <= outside::SHOW_CAP + 32);
        assert!(!shown.contains(SECRET));
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.len() <= 6 * outside::KEEP_CAP + 64 && !json.contains(SECRET));

        let lines = clean(input, false);
        assert!(!lines.contains('\r') && !lines.contains(SECRET));
        assert!(runner_commands(&lines).is_empty(), "{lines:?}");
        let a = annotation("error", Some(input), input);
        assert!(!a.contains(['\n', '\r']) && !a.contains(SECRET));
        assert_eq!(runner_commands(&a).len(), 1);
        let cell = markdown_cell(input, 200);
        assert!(!cell.contains(['\n', '\r']) && !cell.contains(SECRET), "{cell:?}");
        // Every `|` escaped (`\|`): it never ends the table cell.
        assert!(cell.match_indices('|').all(|(i, _)| cell[..i].ends_with('\\')), "{cell:?}");
        let x = xml_text(input, 200);
        assert!(x.chars().all(outside::xml_allowed));
        assert!(!x.contains(['<', '>', '"']));
    }
});
