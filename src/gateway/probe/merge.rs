//! `report merge`: K shard reports into one, as if one machine had held all N. Pure: the
//! caller reads the files. Counts are summed exactly; percentiles come from the merged
//! histograms (within [`REL_ERROR`](crate::gateway::histogram::REL_ERROR)); the per-target
//! and failure tables are summed by key; the thresholds (`--max-error-rate`, `--max-p99`)
//! are the shards' own, applied to the total by the probe's verdicts. Reports of different
//! runs, versions, K or settings, and missing or duplicate shards, are refused with the reason.

use super::attribution::{self, Attribution, RolloutWindow};
use super::merge_disruption::{disruption_report, merge_disruption, sum_by};
use super::report::{
    CookieReport, FailureGroup, HeartbeatReport, Lateness, ProbeReport, Samples, TargetCount,
};
use super::shard::{DisruptionPart, ShardCounts, ShardPart};
use crate::gateway::histogram::LogHistogram;
use crate::gateway::stats::{self, Summary};
use crate::outside::Outside;

/// All shards of one run, summed.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub first: ShardPart,
    pub shards: u32,
    pub counts: ShardCounts,
    pub open_phase_ms: u64,
    pub duration_ms: u64,
    pub interrupted: bool,
    pub cookies_consistent: Option<bool>,
    pub connect_us: LogHistogram,
    pub lateness_ms: LogHistogram,
    pub targets: Vec<(String, u64)>,
    pub open_failed_by_target: Vec<(String, u64)>,
    pub failures: Vec<(String, String, u64)>,
    /// With `--reconnect`: the shards' disruption, summed (from a rollout's start once
    /// [`Merged::against`] placed it).
    pub disruption: Option<DisruptionPart>,
    /// Where the drops fell against a rollout that ran elsewhere (`report merge --deploy`).
    pub attribution: Option<Attribution>,
}

/// Why the reports do not make one run.
fn refuse(parts: &[ShardPart]) -> Result<(), String> {
    let first = parts.first().ok_or("no shard report given")?;
    for p in parts {
        let name = format!("shard {}/{}", p.shard.index, p.shard.count);
        if p.run_id != first.run_id {
            return Err(format!(
                "{name} is of run \"{}\", the first report of run \"{}\"",
                p.run_id, first.run_id
            ));
        }
        if p.version != first.version {
            return Err(format!(
                "{name} was written by bosar-deploy {}, the first by {}",
                p.version, first.version
            ));
        }
        if p.shard.count != first.shard.count || p.total_connections != first.total_connections {
            return Err(format!(
                "{name} of N = {} does not match the first report's {}/{} of N = {}",
                p.total_connections, first.shard.index, first.shard.count, first.total_connections
            ));
        }
        if p.settings != first.settings {
            return Err(format!(
                "{name} ran with other settings (url, thresholds, hold) than the first report"
            ));
        }
        match (&p.disruption, &first.disruption) {
            (Some(d), Some(f)) if d.limits != f.limits => {
                return Err(format!(
                    "{name} ran with other --reconnect limits than the first report"
                ))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(format!(
                "{name} and the first report differ in --reconnect (one has a disruption report)"
            ))
            }
            _ => {}
        }
        let back_ok = p
            .disruption
            .as_ref()
            .is_none_or(|d| d.back_ms.is_consistent());
        if !(p.connect_us.is_consistent() && p.lateness_ms.is_consistent() && back_ok) {
            return Err(format!("{name}: its histograms do not add up"));
        }
    }
    let k = first.shard.count;
    let mut seen = vec![0u32; k as usize + 1];
    for p in parts {
        seen[p.shard.index as usize] += 1;
    }
    if let Some(dup) = (1..=k).find(|&i| seen[i as usize] > 1) {
        return Err(format!("shard {dup}/{k} is given more than once"));
    }
    let missing: Vec<String> = (1..=k)
        .filter(|&i| seen[i as usize] == 0)
        .map(|i| format!("{i}/{k}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing shard(s) {}", missing.join(", ")));
    }
    Ok(())
}

fn add(a: &mut ShardCounts, b: &ShardCounts) {
    a.connections += b.connections;
    a.opened += b.opened;
    a.open_failed += b.open_failed;
    a.dropped += b.dropped;
    a.closed += b.closed;
    a.close_failed += b.close_failed;
    a.unknown_target += b.unknown_target;
    a.cookie_set += b.cookie_set;
    a.heartbeats_received += b.heartbeats_received;
    a.heartbeats_acked += b.heartbeats_acked;
    a.received_in_hold += b.received_in_hold;
    a.due_in_hold += b.due_in_hold;
}

/// The shards of one run as one; `Err` says why they are not one run.
pub fn merge(parts: &[ShardPart]) -> Result<Merged, String> {
    refuse(parts)?;
    let first = parts[0].clone();
    let mut counts = ShardCounts::default();
    let mut connect_us = LogHistogram::default();
    let mut lateness_ms = LogHistogram::default();
    let mut consistent: Option<bool> = None;
    for p in parts {
        add(&mut counts, &p.counts);
        connect_us = connect_us.merge(&p.connect_us);
        lateness_ms = lateness_ms.merge(&p.lateness_ms);
        if let Some(c) = p.cookies_consistent {
            consistent = Some(consistent.unwrap_or(true) && c);
        }
    }
    let targets = sum_by(parts.iter().flat_map(|p| p.targets.iter().cloned()));
    let open_failed_by_target = sum_by(
        parts
            .iter()
            .flat_map(|p| p.open_failed_by_target.iter().cloned()),
    );
    let failures = sum_by(parts.iter().flat_map(|p| {
        p.failures
            .iter()
            .map(|(ph, c, n)| ((ph.clone(), c.clone()), *n))
    }))
    .into_iter()
    .map(|((ph, c), n)| (ph, c, n))
    .collect();
    let disruption = first
        .disruption
        .as_ref()
        .map(|_| merge_disruption(parts.iter().filter_map(|p| p.disruption.as_ref())));
    Ok(Merged {
        disruption,
        attribution: None,
        shards: first.shard.count,
        open_phase_ms: parts.iter().map(|p| p.open_phase_ms).max().unwrap_or(0),
        duration_ms: parts.iter().map(|p| p.duration_ms).max().unwrap_or(0),
        interrupted: parts.iter().any(|p| p.interrupted),
        first,
        counts,
        cookies_consistent: consistent,
        connect_us,
        lateness_ms,
        targets,
        open_failed_by_target,
        failures,
    })
}

/// Connect latency summary (ms) from the merged histogram of microseconds.
fn summary_of(h: &LogHistogram) -> Option<Summary> {
    let ms = |us: u64| stats::round_ms(us as f64 / 1000.0);
    let pct = |p| ms(h.percentile(p).unwrap_or(0));
    (h.count > 0).then(|| Summary {
        count: h.count as usize,
        min_ms: ms(h.min),
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: ms(h.max),
        mean_ms: stats::round_ms(h.sum as f64 / h.count as f64 / 1000.0),
    })
}

impl Merged {
    /// Counts the disruption from the start of `w`, a rollout that ran elsewhere while the
    /// shards held, and places every drop in its phase; `Err` says why it cannot.
    pub fn against(&mut self, parts: &[ShardPart], w: &RolloutWindow) -> Result<(), String> {
        let d = self.disruption.as_ref().ok_or(
            "the shards ran without --reconnect: they kept no drops to place against the rollout",
        )?;
        if d.dropped_sessions > 0 && d.seconds.is_empty() {
            return Err(
                "the shard reports carry no drop times: they were written by an older bosar-deploy"
                    .into(),
            );
        }
        // Fail closed: rows that do not add up to the shard's own counts would count wrongly.
        for p in parts {
            let Some(pd) = &p.disruption else { continue };
            let rows = super::disruption::seconds::count(&pd.seconds, None, None);
            if rows.sessions != pd.dropped_sessions + pd.dropped_before_window
                || rows.lost != pd.lost
                || rows.drops < pd.drop_events
            {
                return Err(format!(
                    "shard {}/{}: its drops by second do not add up to its counts",
                    p.shard.index, p.shard.count
                ));
            }
        }
        self.attribution = Some(Attribution {
            deployment: w.name.clone(),
            rollout_started_unix_ms: w.started_unix_ms,
            rollout_ended_unix_ms: w.ended_unix_ms,
            phases: attribution::phases(&d.seconds, w),
            uncovered: attribution::uncovered(parts, w),
        });
        self.disruption = Some(attribution::rewindow(d, w.started_unix_ms));
        Ok(())
    }

    /// The probe's report of the whole run, for its verdicts and its output. Fields a shard
    /// does not carry (cookie values, the open-file limit) are empty.
    pub fn report(&self) -> ProbeReport {
        let c = &self.counts;
        let s = &self.first.settings;
        let errors = c.open_failed + c.dropped + c.close_failed;
        let connections = self.first.total_connections;
        let open_phase = std::time::Duration::from_millis(self.open_phase_ms);
        let due = c.due_in_hold as f64;
        ProbeReport {
            url: s.url.clone(),
            interrupted: self.interrupted,
            namespace: s.namespace.clone(),
            transport: "websocket",
            connections,
            concurrency: s.concurrency,
            rate_limit: s.rate_limit,
            hold_ms: s.hold_ms,
            max_error_rate: s.max_error_rate,
            max_p99_ms: s.max_p99_ms,
            open_files: None,
            duration_ms: self.duration_ms,
            opened: c.opened,
            open_failed: c.open_failed,
            dropped: c.dropped,
            closed: c.closed,
            close_failed: c.close_failed,
            errors,
            error_rate: errors as f64 / connections.max(1) as f64,
            open_phase_ms: self.open_phase_ms,
            handshakes_per_s: stats::per_second(c.opened, open_phase),
            connect: summary_of(&self.connect_us),
            targets: self
                .targets
                .iter()
                .map(|(i, n)| TargetCount {
                    instance: Outside::new(i),
                    sessions: *n,
                })
                .collect(),
            open_failed_by_target: self
                .open_failed_by_target
                .iter()
                .map(|(i, n)| TargetCount {
                    instance: Outside::new(i),
                    sessions: *n,
                })
                .collect(),
            unknown_target: c.unknown_target,
            cookies: CookieReport {
                name: None,
                set: c.cookie_set,
                distinct_values: 0,
                values: Vec::new(),
                consistent: self.cookies_consistent,
            },
            heartbeats: HeartbeatReport {
                interval_ms: s.heartbeat_interval_ms,
                received: c.heartbeats_received,
                acked: c.heartbeats_acked,
                received_in_hold: c.received_in_hold,
                expected_in_hold: due,
                delivery_ratio: stats::ratio(c.received_in_hold as f64, due)
                    .map(|r| (r * 1000.0).round() / 1000.0),
                lateness: Lateness {
                    p50_ms: self.lateness_ms.percentile(50.0),
                    p99_ms: self.lateness_ms.percentile(99.0),
                    max_ms: (self.lateness_ms.count > 0).then_some(self.lateness_ms.max),
                    late: above(&self.lateness_ms, s.slack_ms),
                    slack_ms: s.slack_ms,
                },
            },
            failures: self
                .failures
                .iter()
                .map(|(phase, cause, count)| FailureGroup {
                    phase: phase.clone(),
                    cause: cause.clone(),
                    count: *count,
                })
                .collect(),
            disruption: self
                .disruption
                .as_ref()
                .map(|d| disruption_report(d, connections)),
            samples: Samples {
                connect_us: self.connect_us.clone(),
                lateness_ms: self.lateness_ms.clone(),
            },
        }
    }
}

/// Samples in buckets wholly above `limit` (a bucket straddling it is not counted, as the
/// probe's own lateness count does).
fn above(h: &LogHistogram, limit: u64) -> u64 {
    let split = LogHistogram::of([limit]).buckets[0].0;
    h.buckets.iter().filter(|b| b.0 > split).map(|b| b.1).sum()
}

#[cfg(test)]
mod tests {
    use super::super::disruption;
    use super::super::shard::{Shard, ShardSettings};
    use super::*;
    use proptest::prelude::*;

    /// One session as a shard would count it.
    #[derive(Debug, Clone)]
    struct Session {
        connect_us: Option<u64>,
        target: u8,
        dropped: bool,
    }

    fn settings() -> ShardSettings {
        ShardSettings {
            url: "http://127.0.0.1:1".into(),
            namespace: "/chat".into(),
            concurrency: 10,
            rate_limit: None,
            hold_ms: 5000,
            max_error_rate: 0.0,
            max_p99_ms: None,
            heartbeat_interval_ms: 1000,
            slack_ms: 1000,
        }
    }

    fn part(sessions: &[Session], index: u32, k: u32, n: u32) -> ShardPart {
        let opened: Vec<&Session> = sessions.iter().filter(|s| s.connect_us.is_some()).collect();
        let dropped = opened.iter().filter(|s| s.dropped).count() as u64;
        let failed = (sessions.len() - opened.len()) as u64;
        ShardPart {
            run_id: "run".into(),
            version: "0.1.0".into(),
            shard: Shard { index, count: k },
            total_connections: n,
            interrupted: false,
            settings: settings(),
            counts: ShardCounts {
                connections: sessions.len() as u64,
                opened: opened.len() as u64,
                open_failed: failed,
                dropped,
                closed: opened.len() as u64 - dropped,
                ..ShardCounts::default()
            },
            open_phase_ms: 10,
            duration_ms: 20,
            held_ms: 0,
            cookies_consistent: None,
            connect_us: LogHistogram::of(opened.iter().filter_map(|s| s.connect_us)),
            lateness_ms: LogHistogram::default(),
            targets: stats::group(opened.iter().map(|s| format!("gw-{}", s.target)))
                .into_iter()
                .collect(),
            open_failed_by_target: stats::group(
                sessions
                    .iter()
                    .filter(|s| s.connect_us.is_none())
                    .map(|s| format!("gw-{}", s.target)),
            )
            .into_iter()
            .collect(),
            failures: if failed > 0 {
                vec![("open".into(), "refused".into(), failed)]
            } else {
                vec![]
            },
            disruption: None,
        }
    }

    fn sessions() -> impl Strategy<Value = Vec<Session>> {
        prop::collection::vec(
            (
                prop::option::weighted(0.9, 100u64..5_000_000),
                0u8..4,
                any::<bool>(),
            )
                .prop_map(|(connect_us, target, dropped)| Session {
                    connect_us,
                    target,
                    dropped,
                }),
            1..300,
        )
    }

    proptest! {
        /// Any split of the same sessions into K shards merges to the same counts, tables and
        /// histograms as one shard holding all of them.
        #[test]
        fn any_split_merges_the_same(all in sessions(), k in 1u32..8, seed in any::<u64>()) {
            let n = all.len() as u32;
            let whole = merge(&[part(&all, 1, 1, n)]).unwrap();
            // Deal the sessions to shards by a seeded rule (not the shares: any split).
            let mut shards: Vec<Vec<Session>> = vec![Vec::new(); k as usize];
            for (i, s) in all.iter().enumerate() {
                let to = (seed.wrapping_mul(i as u64 + 1) >> 7) % k as u64;
                shards[to as usize].push(s.clone());
            }
            let parts: Vec<ShardPart> = shards
                .iter()
                .enumerate()
                .map(|(i, s)| part(s, i as u32 + 1, k, n))
                .rev()
                .collect();
            let m = merge(&parts).unwrap();
            prop_assert_eq!(&m.counts, &whole.counts);
            prop_assert_eq!(&m.connect_us, &whole.connect_us);
            prop_assert_eq!(&m.targets, &whole.targets);
            prop_assert_eq!(&m.open_failed_by_target, &whole.open_failed_by_target);
            prop_assert_eq!(&m.failures, &whole.failures);
            let (a, b) = (m.report(), whole.report());
            prop_assert_eq!(a.connect, b.connect);
            prop_assert_eq!(a.error_rate, b.error_rate);
        }
    }

    fn three() -> Vec<ShardPart> {
        let s = Session {
            connect_us: Some(1000),
            target: 1,
            dropped: false,
        };
        (1..=3)
            .map(|i| part(std::slice::from_ref(&s), i, 3, 3))
            .collect()
    }

    #[test]
    fn refuses_what_is_not_one_run() {
        assert!(merge(&three()).is_ok());
        assert_eq!(merge(&[]).unwrap_err(), "no shard report given");
        let e = merge(&three()[..1]).unwrap_err();
        assert_eq!(e, "missing shard(s) 2/3, 3/3");
        let mut dup = three();
        dup[2] = dup[1].clone();
        assert_eq!(
            merge(&dup).unwrap_err(),
            "shard 2/3 is given more than once"
        );
        let mut other = three();
        other[1].run_id = "other".into();
        assert!(merge(&other).unwrap_err().contains("of run \"other\""));
        let mut version = three();
        version[2].version = "9.9.9".into();
        assert!(merge(&version).unwrap_err().contains("bosar-deploy 9.9.9"));
        let mut k = three();
        k[1].shard.count = 4;
        assert!(merge(&k).unwrap_err().contains("does not match"));
        let mut thresholds = three();
        thresholds[2].settings.max_error_rate = 0.5;
        assert!(merge(&thresholds).unwrap_err().contains("other settings"));
        let mut forged = three();
        forged[0].connect_us.count += 1;
        assert!(merge(&forged).unwrap_err().contains("do not add up"));
    }

    #[test]
    fn thresholds_apply_to_the_total() {
        // One failure in three sessions: 33 % of the total, over a 0.2 gate.
        let mut parts = three();
        parts[0] = part(
            &[Session {
                connect_us: None,
                target: 0,
                dropped: false,
            }],
            1,
            3,
            3,
        );
        for p in &mut parts {
            p.settings.max_error_rate = 0.2;
        }
        let r = merge(&parts).unwrap().report();
        assert_eq!((r.errors, r.opened, r.connections), (1, 2, 3));
        assert!(r.error_rate > 0.2);
        let checks = super::super::checks(&r);
        assert_eq!(
            crate::report::worst(&checks),
            crate::report::CheckStatus::Fail
        );
    }

    fn disrupted(lost: u64, moved: u64, back: &[u64]) -> DisruptionPart {
        DisruptionPart {
            recovered: 0,
            recovery_offered: false,
            opened: 1,
            dropped_sessions: moved + lost,
            drop_events: moved + lost,
            dropped_by_cause: vec![("reset".into(), moved + lost)],
            reconnected: moved,
            lost,
            lost_by_cause: vec![("server_disconnect".into(), lost)],
            reconnect_like: crate::cli::ReconnectLike::Browser,
            moved,
            moves: vec![("gw-a".into(), "gw-b".into(), moved)],
            attempts_made: moved,
            attempts_failed: 0,
            attempts_failed_by_cause: vec![],
            longest_heartbeat_gap_ms: Some(100 * moved),
            dropped_before_window: 0,
            limits: disruption::Limits {
                max_lost: 0,
                max_drop_rate: None,
                max_reconnect_p99_ms: None,
            },
            back_ms: LogHistogram::of(back.iter().copied()),
            started_unix_ms: 1,
            seconds: vec![super::super::disruption::seconds::DropSecond {
                at: 100,
                drops: moved + lost,
                by_cause: vec![("reset".into(), moved + lost)],
                sessions: moved + lost,
                lost_by_cause: vec![("server_disconnect".into(), lost)],
            }],
        }
    }

    /// `--reconnect` shards: the from→to table and the counts summed, the reconnect times
    /// merged, `--max-lost` applied to the total; mixing with a shard without is refused.
    #[test]
    fn disruption_merges_and_gates_the_total() {
        let mut parts = three();
        parts[0].disruption = Some(disrupted(0, 3, &[900, 1100, 1300]));
        parts[1].disruption = Some(disrupted(0, 2, &[1000, 5000]));
        parts[2].disruption = Some(disrupted(1, 0, &[]));
        let r = merge(&parts).unwrap().report();
        let d = r.disruption.as_ref().unwrap();
        assert_eq!((d.lost, d.moved, d.reconnected), (1, 5, 5));
        let told = d
            .lost_by_cause
            .iter()
            .find(|c| c.cause == "server_disconnect")
            .unwrap();
        assert_eq!(
            (told.count, told.text),
            (1, "told to leave (io server disconnect)")
        );
        assert_eq!(d.moves.len(), 1);
        assert_eq!(d.moves[0].sessions, 5);
        assert_eq!(d.dropped.by_cause[0].count, 6);
        assert_ne!(d.dropped.by_cause[0].text, "other");
        assert_eq!(d.longest_heartbeat_gap_ms, Some(300));
        let times = d.reconnect.unwrap();
        assert_eq!((times.count, times.max_ms), (5, 5000));
        assert!(render_table_of(&r).contains("gw-a"));
        let checks = super::super::checks(&r);
        let gate = checks.iter().find(|c| c.name == "disruption").unwrap();
        assert_eq!(
            gate.status,
            crate::report::CheckStatus::Fail,
            "{}",
            gate.message
        );
        parts[2].disruption = None;
        assert!(merge(&parts).unwrap_err().contains("differ in --reconnect"));
    }

    /// Placed against a rollout elsewhere: drops before its start leave the verdict, so the
    /// lost session no longer fails `--max-lost 0`; from before them it still does.
    #[test]
    fn against_a_rollout_counts_from_its_start() {
        let mut parts = three();
        parts[0].disruption = Some(disrupted(0, 3, &[900]));
        parts[1].disruption = Some(disrupted(0, 2, &[1000]));
        parts[2].disruption = Some(disrupted(1, 0, &[]));
        let gate = |since_ms: i64| {
            let mut m = merge(&parts).unwrap();
            let w = RolloutWindow {
                name: "d".into(),
                started_unix_ms: since_ms,
                ended_unix_ms: None,
                moments: vec![],
            };
            m.against(&parts, &w).unwrap();
            let r = m.report();
            let d = r.disruption.clone().unwrap();
            let checks = super::super::checks(&r);
            let status = checks
                .iter()
                .find(|c| c.name == "disruption")
                .unwrap()
                .status;
            (
                d.lost,
                d.dropped.sessions,
                d.dropped_before_window,
                status,
                m.attribution.unwrap(),
            )
        };
        let (lost, dropped, before, status, a) = gate(100_000);
        assert_eq!((lost, dropped, before), (1, 6, 0));
        assert_eq!(status, crate::report::CheckStatus::Fail);
        assert_eq!(a.phases[1].drops, 6);
        let (lost, dropped, before, status, a) = gate(101_000);
        assert_eq!((lost, dropped, before), (0, 0, 6));
        assert_ne!(status, crate::report::CheckStatus::Fail);
        assert_eq!((a.phases[0].drops, a.phases[0].counted), (6, false));
        // Without --reconnect there is nothing to place.
        let mut plain = three();
        for p in &mut plain {
            p.disruption = None;
        }
        let w = RolloutWindow {
            name: "d".into(),
            started_unix_ms: 0,
            ended_unix_ms: None,
            moments: vec![],
        };
        assert!(merge(&plain)
            .unwrap()
            .against(&plain, &w)
            .unwrap_err()
            .contains("without --reconnect"));
        // Rows that do not add up to a shard's counts (a hostile or broken document): refused.
        let mut bad = three();
        bad[0].disruption = Some(disrupted(0, 3, &[900]));
        bad[1].disruption = Some(disrupted(0, 2, &[1000]));
        let mut lying = disrupted(1, 0, &[]);
        lying.seconds[0].lost_by_cause = vec![("still_trying".into(), 5)];
        bad[2].disruption = Some(lying);
        let err = merge(&bad).unwrap().against(&bad, &w).unwrap_err();
        assert!(
            err.contains("shard 3/3: its drops by second do not add up"),
            "{err}"
        );
    }

    fn render_table_of(r: &ProbeReport) -> String {
        disruption::render_table(r.disruption.as_ref().unwrap())
    }
}
