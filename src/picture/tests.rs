use super::*;

const HOSTILE: &str = "i-0abc\"'><script>alert(1)</script></svg><img src=http://x/a.png>\u{1b}[31m";

fn run() -> Timeline {
    Timeline {
        title: "verify --connections 4 --reconnect http://127.0.0.1:1".into(),
        started: Some("2026-12-05T09:00:00Z".into()),
        duration_ms: 5_000,
        step_ms: 1_000,
        held: vec![
            Held {
                target: Outside::new("gw-a"),
                counts: vec![2, 2, 0, 0, 0],
            },
            Held {
                target: Outside::new(HOSTILE),
                counts: vec![2, 2, 2, 4, 4],
            },
        ],
        drops: vec![0, 0, 2, 0, 0],
        reconnects: vec![0, 0, 0, 2, 0],
        moments: vec![Moment {
            at_ms: 2_000,
            label: Outside::new("draining started on </svg><script>x()</script>"),
        }],
        traffic: vec![TrafficLine {
            label: "new connections".into(),
            load_balancer: Outside::new("app/<b>lb</b>/1"),
            points: vec![(-60_000, 3.0), (0, 40.0)],
        }],
        headline: "2 dropped, 2 back".into(),
        probed: true,
    }
}

/// What a page may never hold: script, a fetch of anything, an element from outside text.
fn assert_inert(page: &str) {
    let lower = page.to_ascii_lowercase();
    for bad in [
        "<script", "<img", "<link", "<iframe", "<object", "@import", "url(",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    // The markup alone (text never holds a raw `<`): no attribute fetches or runs anything.
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        let tag = tag.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for bad in ["src=", "href=", "http:", "https:"] {
            assert!(!tag.contains(bad), "{bad} in <{tag}>");
        }
        let handler = tag.split_whitespace().skip(1).any(|a| a.starts_with("on"));
        assert!(!handler, "an event handler in <{tag}>");
    }
    assert_eq!(lower.matches("<svg").count(), 1);
    assert_eq!(lower.matches("</svg>").count(), 1);
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    ));
    assert!(!page.contains('\u{1b}'), "control characters are escaped");
}

#[test]
fn a_hostile_instance_id_stays_text() {
    let page = page(&run());
    assert_inert(&page);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;/svg&gt;"),
        "{page}"
    );
    assert!(page.contains("i-0abc&quot;&apos;&gt;"), "quotes escaped");
    assert!(page.contains("\\x1b[31m"), "the escape shown as text");
    assert!(page.contains("draining started on &lt;/svg&gt;&lt;script&gt;x()&lt;/script&gt;"));
    assert!(page.contains("app/&lt;b&gt;lb&lt;/b&gt;/1"));
}

#[test]
fn the_bands_stack_to_the_total() {
    let t = run();
    let svg = svg::chart(&t);
    // Two bands, one polygon each; the top of the stack at step 3 is 4 sessions of a nice
    // maximum of 5: y = bottom - 4/5 of the plot's height.
    assert_eq!(svg.matches("<polygon").count(), 2);
    let top = 24.0 + 20.0; // the moment band and the panel's title
    let y4 = top + 200.0 - 200.0 * 4.0 / 5.0;
    assert!(svg.contains(&format!(",{y4:.1}")), "{svg}");
    // Drops and reconnects: one bar each.
    assert_eq!(svg.matches("<rect").count(), 2);
    assert!(svg.contains("<title>2 at +2s</title>"));
    // One traffic line with its two minutes, the moment numbered.
    assert_eq!(svg.matches("<polyline").count(), 1);
    assert_eq!(svg.matches("<circle").count(), 2);
    assert!(svg.contains("class=\"moment-n\""));
    // The axis reaches back to the traffic's first minute.
    assert!(svg.contains(">-1m</text>"), "{svg}");
}

#[test]
fn an_empty_run_still_draws_and_says_why() {
    let t = Timeline {
        title: "verify".into(),
        probed: true,
        ..Timeline::default()
    };
    let page = page(&t);
    assert_inert(&page);
    assert!(page.contains("no session was held"));
    assert!(page.contains("no session dropped"));
    assert!(!page.contains("NaN") && !page.contains("inf"), "{page}");
    assert_eq!(mermaid::section(&t), "", "no chart without data");
    // Series shorter than others, zero steps: no panic, no NaN.
    let t = Timeline {
        step_ms: 1_000,
        duration_ms: 0,
        held: vec![Held {
            target: Outside::new("a"),
            counts: vec![],
        }],
        drops: vec![1],
        ..Timeline::default()
    };
    assert!(!super::page(&t).contains("NaN"));
}

#[test]
fn many_targets_are_summed_into_one_band() {
    let mut t = run();
    t.held = (0..20)
        .map(|i| Held {
            target: Outside::new(&format!("gw-{i}")),
            counts: vec![i, i],
        })
        .collect();
    let bands = t.bands();
    assert_eq!(bands.len(), MAX_TARGETS);
    assert!(bands[0].target.is("gw-19"), "the biggest first");
    let other = bands.last().unwrap();
    assert!(other.target.is("(9 other targets)"));
    assert_eq!(other.counts, vec![36, 36], "0+1+…+8");
}

#[test]
fn the_summary_chart_is_mermaid_with_outside_text_in_code_spans() {
    let md = mermaid::section(&run());
    assert!(md.contains("```mermaid\nxychart-beta\n"), "{md}");
    assert_eq!(
        md.matches("```mermaid").count(),
        3,
        "sessions, drops, one traffic series"
    );
    assert!(md.contains("    title \"new connections per minute (CloudWatch)\"\n    x-axis \"minute from the start\" [\"-1m\", \"+0s\"]\n    y-axis 0 --> 50\n    line [3, 40]\n"), "{md}");
    assert!(
        md.contains("| ` new connections ` | ` app/<b>lb</b>/1 ` |"),
        "{md}"
    );
    assert!(md.contains("    line [2, 2, 0, 0, 0]"));
    assert!(md.contains("    line [2, 2, 2, 4, 4]"));
    assert!(md.contains("    bar [0, 0, 2, 0, 0]"));
    assert!(md.contains("x-axis \"time from the start\" [\"+0s\", \"+1s\""));
    // Outside text only in the tables, as code spans; none inside a chart.
    let charts: Vec<&str> = md.split("```").skip(1).step_by(2).collect();
    assert!(charts
        .iter()
        .all(|c| !c.contains("script") && !c.contains("gw-a")));
    assert!(
        md.contains("| 2 | ` i-0abc\"'><script>alert(1)</script></svg><img src=http://x/a.png>\\x1b[31m ` |"),
        "{md}"
    );
    assert!(md.contains("| 1 | +2s | ` draining started on </svg><script>x()</script> ` |"));
    let cmds = crate::outside::runner_commands(&md);
    assert!(cmds.is_empty(), "{cmds:?}");
}

#[test]
fn long_runs_are_grouped_to_a_readable_axis() {
    let t = Timeline {
        title: "deploy".into(),
        duration_ms: 600_000,
        step_ms: 1_000,
        held: vec![Held {
            target: Outside::new("gw"),
            counts: vec![5; 600],
        }],
        drops: (0..600).map(|i| u32::from(i % 100 == 0)).collect(),
        reconnects: vec![0; 600],
        ..Timeline::default()
    };
    let md = mermaid::section(&t);
    let held_line = md.lines().find(|l| l.starts_with("    line [5")).unwrap();
    assert_eq!(held_line.matches(',').count() + 1, mermaid::MAX_POINTS);
    let bar = md.lines().find(|l| l.starts_with("    bar [")).unwrap();
    assert_eq!(
        bar.matches('1').count(),
        6,
        "the six drops kept in their groups: {bar}"
    );
}

#[test]
fn the_path_is_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = check_path(dir.path()).unwrap_err();
    assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
    assert!(e.to_string().contains("--html"), "{e}");
    let missing = dir.path().join("nope/page.html");
    let e = check_path(&missing).unwrap_err();
    assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
    assert!(e.to_string().contains("does not exist"), "{e}");
    let ok = dir.path().join("page.html");
    check_path(&ok).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
    write(&ok, &run()).unwrap();
    assert!(std::fs::read_to_string(&ok)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

#[test]
fn moments_too_close_share_a_label() {
    let mut t = run();
    let at = |ms: i64, what: &str| Moment {
        at_ms: ms,
        label: Outside::new(what),
    };
    t.moments = vec![
        at(0, "rollout started"),
        at(10, "new tasks started"),
        at(20, "targets registered"),
        at(4_000, "old tasks stopped"),
    ];
    let svg = svg::chart(&t);
    assert_eq!(svg.matches("class=\"moment\"").count(), 4, "a line each");
    assert!(svg.contains(">1–3</text>"), "{svg}");
    assert!(svg.contains(">4</text>"), "{svg}");
    assert!(svg.contains("<title>+4s old tasks stopped</title>"));
}

#[test]
fn a_deploy_without_sessions_draws_no_session_panel() {
    let mut t = run();
    t.probed = false;
    t.held.clear();
    t.drops.clear();
    t.reconnects.clear();
    let svg = svg::chart(&t);
    assert!(!svg.contains("sessions held"), "{svg}");
    assert_eq!(svg.matches("<polyline").count(), 1, "the traffic alone");
    t.traffic.clear();
    let svg = svg::chart(&t);
    assert!(
        svg.contains("no session was held and no metric was read"),
        "{svg}"
    );
    assert!(svg.contains("class=\"moment\""), "the moments still drawn");
}
