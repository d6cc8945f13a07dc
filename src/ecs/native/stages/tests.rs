use super::*;

fn obs(status: &str, stage: &str) -> Observation {
    Observation {
        status: status.into(),
        stage: Some(stage.into()),
        ..Default::default()
    }
}

fn paused(stage: &str, hook_status: &str) -> Observation {
    Observation {
        hooks: vec![HookView {
            hook_id: "hook-1".into(),
            target_type: "PAUSE".into(),
            status: hook_status.into(),
            expires_at: "2026-12-05T07:00:00Z".into(),
            timeout_action: Some("ROLLBACK".into()),
        }],
        ..obs("IN_PROGRESS", stage)
    }
}

fn decisions(ev: &[Event]) -> Vec<DecisionPoint> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Decide(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn stages_get_a_start_and_an_end_and_success_ends_the_last() {
    let mut t = Tracker::new(None);
    let ev = t.observe(&obs("IN_PROGRESS", "SCALE_UP"), "t0", 0);
    assert_eq!(
        ev,
        vec![
            Event::Status("IN_PROGRESS".into()),
            Event::StageStarted("SCALE_UP".into())
        ]
    );
    assert!(t
        .observe(&obs("IN_PROGRESS", "SCALE_UP"), "t1", 5)
        .is_empty());
    let ev = t.observe(&obs("IN_PROGRESS", "BAKE_TIME"), "t2", 65);
    assert!(ev.contains(&Event::StageEnded {
        stage: "SCALE_UP".into(),
        took_secs: 65
    }));
    let ev = t.observe(&obs("SUCCESSFUL", "CLEAN_UP"), "t3", 100);
    assert_eq!(ev.last(), Some(&Event::Finished(Final::Succeeded)));
    let names: Vec<_> = t.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["SCALE_UP", "BAKE_TIME", "CLEAN_UP"]);
    assert_eq!(t.stages[0].ended.as_deref(), Some("t2"));
    assert_eq!(t.stages[2].ended.as_deref(), Some("t3"));
    assert!(t
        .observe(&obs("SUCCESSFUL", "CLEAN_UP"), "t4", 105)
        .is_empty());
}

#[test]
fn without_a_gate_nothing_is_decided() {
    let mut t = Tracker::new(None);
    let ev = t.observe(&paused("POST_SCALE_UP", "AWAITING_ACTION"), "t0", 0);
    assert!(decisions(&ev).is_empty());
    assert!(ev.iter().any(|e| matches!(e, Event::HookWaiting { expires_at, .. } if expires_at == "2026-12-05T07:00:00Z")));
    assert!(decisions(&t.observe(&obs("IN_PROGRESS", "BAKE_TIME"), "t1", 1)).is_empty());
    assert_eq!(t.in_production(), None);
}

#[test]
fn the_gate_decides_once_at_its_own_stage_only() {
    let mut t = Tracker::new(Some(GateStage::PostTestTrafficShift));
    // A pause at another stage is someone else's hook.
    let ev = t.observe(&paused("POST_SCALE_UP", "AWAITING_ACTION"), "t0", 0);
    assert!(decisions(&ev).is_empty());
    let ev = t.observe(
        &paused("POST_TEST_TRAFFIC_SHIFT", "AWAITING_ACTION"),
        "t1",
        1,
    );
    // hook-1 already seen awaiting at POST_SCALE_UP has the same status: no new wait event,
    // but the gate decides now, at its stage.
    assert_eq!(
        decisions(&ev),
        vec![DecisionPoint::BeforeProduction {
            hook_id: "hook-1".into(),
            stage: "POST_TEST_TRAFFIC_SHIFT".into()
        }]
    );
    assert!(decisions(&t.observe(
        &paused("POST_TEST_TRAFFIC_SHIFT", "AWAITING_ACTION"),
        "t2",
        2
    ))
    .is_empty());
    let ev = t.observe(&paused("POST_TEST_TRAFFIC_SHIFT", "SUCCEEDED"), "t3", 3);
    assert!(ev.contains(&Event::HookEnded {
        hook_id: "hook-1".into(),
        status: "SUCCEEDED".into()
    }));
    // A Lambda hook awaiting is not ours.
    let mut t = Tracker::new(Some(GateStage::PostScaleUp));
    let mut o = paused("POST_SCALE_UP", "AWAITING_ACTION");
    o.hooks[0].target_type = "AWS_LAMBDA".into();
    assert!(decisions(&t.observe(&o, "t0", 0)).is_empty());
}

#[test]
fn production_is_judged_per_stage_and_per_step_until_a_rollback_is_sent() {
    let mut t = Tracker::new(Some(GateStage::PostScaleUp));
    let mut o = obs("IN_PROGRESS", "SCALE_UP");
    o.production_weight = Some(0.0);
    assert!(decisions(&t.observe(&o, "t0", 0)).is_empty());
    // Canary: 5 % on green, one judgement though stage and weight changed together.
    o.stage = Some("PRODUCTION_TRAFFIC_SHIFT".into());
    o.production_weight = Some(5.0);
    let ev = t.observe(&o, "t1", 10);
    assert!(ev.contains(&Event::Step { weight: 5.0 }));
    assert_eq!(
        decisions(&ev),
        vec![DecisionPoint::Production {
            stage: "PRODUCTION_TRAFFIC_SHIFT".into(),
            weight: Some(5.0)
        }]
    );
    assert_eq!(
        t.in_production(),
        Some(("PRODUCTION_TRAFFIC_SHIFT".into(), Some(5.0)))
    );
    o.stage = Some("BAKE_TIME".into());
    assert_eq!(decisions(&t.observe(&o, "t2", 20)).len(), 1);
    o.production_weight = Some(100.0);
    let ev = t.observe(&o, "t3", 30);
    assert!(ev.contains(&Event::Step { weight: 100.0 }));
    assert_eq!(decisions(&ev).len(), 1);
    t.rollback_sent();
    assert_eq!(t.in_production(), None);
    o.production_weight = Some(0.0);
    o.status = "ROLLBACK_IN_PROGRESS".into();
    assert!(decisions(&t.observe(&o, "t4", 40)).is_empty());
}

#[test]
fn linear_steps_each_get_a_judgement() {
    let mut t = Tracker::new(Some(GateStage::PostScaleUp));
    let mut o = obs("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT");
    let mut judged = 0;
    for (i, w) in [0.0, 25.0, 50.0, 75.0, 100.0].into_iter().enumerate() {
        o.production_weight = Some(w);
        judged += decisions(&t.observe(&o, "t", i as i64)).len();
    }
    // The stage's start (at 0 %) and the four steps.
    assert_eq!(judged, 5);
}

#[test]
fn the_end_maps_every_terminal_status() {
    let end = |o: Observation| {
        let mut t = Tracker::new(None);
        match t.observe(&o, "t", 0).pop() {
            Some(Event::Finished(f)) => f,
            e => panic!("{e:?}"),
        }
    };
    let mut o = obs("ROLLBACK_SUCCESSFUL", "BAKE_TIME");
    o.rollback_reason = Some(Outside::new("stopped by bosar-deploy"));
    assert_eq!(
        end(o),
        Final::RolledBack {
            reason: Some(Outside::new("stopped by bosar-deploy"))
        }
    );
    let mut o = obs("ROLLBACK_FAILED", "BAKE_TIME");
    o.status_reason = Some(Outside::new("tasks failed"));
    assert_eq!(
        end(o),
        Final::RollbackFailed {
            reason: Some(Outside::new("tasks failed"))
        }
    );
    let mut o = obs("STOPPED", "SCALE_UP");
    o.newer = Some("arn:newer".into());
    assert_eq!(
        end(o),
        Final::Stopped {
            by: Some("arn:newer".into()),
            reason: None
        }
    );
    assert_eq!(
        end(obs("STOPPED", "SCALE_UP")),
        Final::Stopped {
            by: None,
            reason: None
        }
    );
    for s in [
        "PENDING",
        "IN_PROGRESS",
        "STOP_REQUESTED",
        "ROLLBACK_REQUESTED",
        "ROLLBACK_IN_PROGRESS",
    ] {
        assert!(!is_terminal(s), "{s}");
    }
}

#[test]
fn the_gate_stage_follows_the_test_listener_rule() {
    assert_eq!(
        GateStage::for_service(true).as_str(),
        "POST_TEST_TRAFFIC_SHIFT"
    );
    assert_eq!(GateStage::for_service(false).as_str(), "POST_SCALE_UP");
}
