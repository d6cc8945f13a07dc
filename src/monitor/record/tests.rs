//! The record's arithmetic and its three renderings; the EMF line is checked against a JSON
//! schema of the format's specification and against the rules a schema cannot say (every
//! metric and dimension named in `_aws` is a member of the root).

use super::*;

fn tally() -> Tally {
    let mut t = Tally::default();
    t.dropped(DropCause::TransportClose);
    t.dropped(DropCause::TransportClose);
    t.dropped(DropCause::PingTimeout);
    for ms in [900, 1200, 4000] {
        t.reconnected(ms);
    }
    t.heartbeat(None);
    t.heartbeat(Some(2100));
    t.heartbeat(Some(1900));
    t.failed_attempts = 1;
    t
}

fn record() -> Record {
    let up = vec![
        Some("task-a".to_string()),
        Some("task-b".to_string()),
        Some("task-b".to_string()),
        None,
    ];
    let probe = Probe {
        handshake_ms: Some(6),
        handshake_error: None,
        health_status: Some(200),
        health_ms: Some(3),
    };
    Record::new(
        "2026-12-05T06:40:00Z".into(),
        60_000,
        4,
        &up,
        &tally(),
        probe,
        2000,
    )
}

#[test]
fn a_record_counts_sessions_drops_reconnects_and_gaps() {
    let r = record();
    assert_eq!((r.sessions, r.sessions_up), (4, 3));
    assert_eq!(r.drops, 3);
    assert_eq!(r.drops_by_cause["transport_close"], 2);
    assert_eq!(r.drops_by_cause["ping_timeout"], 1);
    assert_eq!(r.drops_by_cause["server_disconnect"], 0);
    // Above 1 s the histogram's percentiles are at most one 10 ms bucket high.
    assert_eq!(
        (r.reconnects, r.reconnect_p50_ms, r.reconnect_max_ms),
        (3, Some(1209), Some(4000))
    );
    assert_eq!((r.heartbeats, r.heartbeat_gap_max_ms), (3, Some(2100)));
    assert_eq!(r.sessions_per_target["task-b"], 2);
    let line = r.line();
    assert!(line.starts_with("2026-12-05T06:40:00Z sessions 3/4 up, drops 3 (ping_timeout 1, transport_close 2), lost 0, replaced 0, reconnects 3 (p50 1209 ms, max 4000 ms)"), "{line}");
    assert!(line.ends_with("targets task-a:1 task-b:2"), "{line}");
    let quiet = Record::new(
        "t".into(),
        1000,
        2,
        &[None, None],
        &Tally::default(),
        Probe::default(),
        2000,
    );
    assert_eq!(
        (quiet.reconnect_p50_ms, quiet.heartbeat_gap_max_ms),
        (None, None)
    );
    assert!(
        quiet.line().contains("health no answer"),
        "{}",
        quiet.line()
    );
}

#[test]
fn lost_sessions_are_counted_by_cause_apart_from_reconnects() {
    let mut t = Tally::default();
    t.dropped(DropCause::ServerDisconnect);
    t.lost(LostCause::ServerDisconnect);
    t.lost(LostCause::ServerDisconnect);
    t.lost(LostCause::ConnectError);
    // Not a monitor's cause: counted nowhere rather than under another name.
    t.lost(LostCause::StillTrying);
    t.replaced = 2;
    let r = Record::new("t".into(), 1000, 3, &[None], &t, Probe::default(), 2000);
    assert_eq!((r.lost, r.replaced, r.reconnects), (3, 2, 0));
    assert_eq!(r.lost_by_cause["server_disconnect"], 2);
    assert_eq!(r.lost_by_cause["connect_error"], 1);
    assert!(
        r.line()
            .contains("lost 3 (connect_error 1, server_disconnect 2), replaced 2, reconnects 0"),
        "{}",
        r.line()
    );
    let emf: Value = serde_json::from_str(&emf(&r, 0, "N", &dims())).unwrap();
    assert_eq!(
        (emf["Lost"].as_f64(), emf["Replaced"].as_f64()),
        (Some(3.0), Some(2.0))
    );
    assert_eq!(emf["LostByCause"]["server_disconnect"], 2);
}

#[test]
fn the_record_causes_map_onto_the_shared_rules_as_socket_io_client_names_them() {
    use crate::gateway::reconnect_rules::{after_drop, ReconnectLike};
    for c in CAUSES {
        let want = if c == DropCause::ServerDisconnect {
            Err(LostCause::ServerDisconnect)
        } else {
            Ok(())
        };
        assert_eq!(
            after_drop(ReconnectLike::Browser, c.rule_cause()),
            want,
            "{c:?}"
        );
    }
}

/// The Embedded Metric Format's specification as a JSON schema (AWS's "Specification: Embedded
/// metric format": the `_aws` member, one or more metric directives, at most 30 dimension keys
/// per set and 100 metrics per directive, units from CloudWatch's list, resolution 1 or 60).
fn emf_schema() -> Value {
    json!({
        "type": "object",
        "required": ["_aws"],
        "properties": {
            "_aws": {
                "type": "object",
                "required": ["Timestamp", "CloudWatchMetrics"],
                "properties": {
                    "Timestamp": { "type": "integer", "minimum": 0 },
                    "CloudWatchMetrics": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["Namespace", "Dimensions", "Metrics"],
                            "properties": {
                                "Namespace": { "type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^:].*$" },
                                "Dimensions": {
                                    "type": "array",
                                    "items": { "type": "array", "maxItems": 30, "items": { "type": "string", "minLength": 1, "maxLength": 250 } }
                                },
                                "Metrics": {
                                    "type": "array",
                                    "maxItems": 100,
                                    "items": {
                                        "type": "object",
                                        "required": ["Name"],
                                        "properties": {
                                            "Name": { "type": "string", "minLength": 1, "maxLength": 1024 },
                                            "Unit": { "enum": ["Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"] },
                                            "StorageResolution": { "enum": [1, 60] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn dims() -> BTreeMap<String, String> {
    [
        ("Service".to_string(), "chat-api".to_string()),
        ("Environment".to_string(), "prod".to_string()),
    ]
    .into()
}

#[test]
fn an_emf_line_follows_the_specification() {
    let validator = jsonschema::validator_for(&emf_schema()).unwrap();
    for r in [
        record(),
        Record::new(
            "t".into(),
            1000,
            2,
            &[None, None],
            &Tally::default(),
            Probe::default(),
            2000,
        ),
    ] {
        let line = emf(&r, 1_764_916_800_000, "BoSar/Gateway", &dims());
        assert!(!line.contains('\n'), "one line");
        let v: Value = serde_json::from_str(&line).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{line}");
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(
                v[name].is_number(),
                "metric {name} is not a number at the root: {line}"
            );
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(
                    v[d.as_str().unwrap()].is_string(),
                    "dimension {d} missing: {line}"
                );
            }
        }
        assert_eq!(v["Service"], "chat-api");
    }
    // The schema itself says no.
    let bad = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "", "Dimensions": [], "Metrics": []}]}});
    assert!(!validator.is_valid(&bad));
    let bad = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], "Metrics": [{"Name": "x", "Unit": "Furlongs"}]}]}});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn missing_values_are_left_out_of_emf() {
    let r = Record::new(
        "t".into(),
        1000,
        2,
        &[None, None],
        &Tally::default(),
        Probe::default(),
        2000,
    );
    let names: Vec<&str> = emf_metrics(&r).iter().map(|m| m.0).collect();
    assert!(
        !names.contains(&"HandshakeTime") && !names.contains(&"ReconnectP50"),
        "{names:?}"
    );
    assert!(names.contains(&"SessionsUp") && names.contains(&"HealthUp"));
    let m = emf_metrics(&record());
    let rate = m.iter().find(|x| x.0 == "DropRate").unwrap().2;
    assert_eq!(rate, 75.0);
}
