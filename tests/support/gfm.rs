//! The step summary as GitHub renders it: `cmark-gfm` (GitHub's renderer, Debian's package)
//! with the table and autolink extensions. A missing `cmark-gfm` fails the test loudly with the
//! install command, never skips it.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// `markdown` rendered to HTML.
pub fn render(markdown: &str) -> String {
    let mut child = Command::new("cmark-gfm")
        .args(["-e", "table", "-e", "autolink"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cmark-gfm not runnable ({e}): run `bash scripts/setup.sh` (Debian package cmark-gfm)")
        });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(markdown.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "cmark-gfm failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The summary rendered, asserting that it renders outside text as text: no link (the tool
/// writes none of its own, so any `<a` came from outside text), image, emphasis or raw HTML,
/// and every table row has its four cells.
pub fn assert_renders_as_text(markdown: &str) -> String {
    let html = render(markdown);
    for bad in ["<a ", "<img", "<em>", "<script", "raw HTML omitted"] {
        assert!(
            !html.contains(bad),
            "{bad} in the rendered summary:\n{html}\nfrom:\n{markdown}"
        );
    }
    for row in html.split("<tr>").skip(1) {
        let cells = row.matches("<td").count() + row.matches("<th").count();
        assert_eq!(cells, 4, "a row without its 4 cells: {row}");
    }
    html
}
