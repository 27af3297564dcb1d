//! One conformance suite for every `Store` backend: the same scenario runs
//! against SQLite and PostgreSQL, each method's answers are checked against
//! what the scenario knows, and the two engines' transcripts must be equal
//! (times the store stamps itself are masked).
//!
//! The PostgreSQL half needs a server: `IOTSCOPE_TEST_POSTGRES` (set by
//! `.ci/run`, which starts one; `scripts/pg-scratch.sh start DIR` does it
//! by hand).

use iotscope_store::{
    AlertRecord, BlocklistRecord, CaptureLoss, DetectionRecord, FindingRecord, HoneypotSession,
    IngestedFile, MapQuery, ReportQuery, Retention, ServiceObservation, SessionRecord, Store,
    StoreError, SurveyRunStatus, SurveyShard, Tier, TierChoice, UserRecord,
};
use iotscope_telescope::{Telescope, TelescopeConfig};
use iotscope_wire::LinkType;

const T0: i64 = 1_475_280_000_000_000_000; // 2016-10-01T00:00:00Z
const HOUR: i64 = 3_600_000_000_000;

/// A raw IPv4 TCP segment from `src` to 198.18.0.`dst`:`dport`; `seq_is_dst`
/// gives it Mirai's fingerprint (sequence number = destination address).
fn tcp4(src: [u8; 4], dst: u8, dport: u16, flags: u8, seq_is_dst: bool) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&[198, 18, 0, dst]);
    p.extend_from_slice(&[0x9c, 0x40]);
    p.extend_from_slice(&dport.to_be_bytes());
    let seq = if seq_is_dst {
        [198, 18, 0, dst]
    } else {
        [0, 0, 0, 9]
    };
    p.extend_from_slice(&seq);
    p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 4, 0, 0, 0, 0, 0]);
    p
}

fn udp4(src: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&[198, 18, 0, 7]);
    p.extend_from_slice(&[0x13, 0x88]);
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 8, 0, 0]);
    p
}

/// A run over `hours` hours starting at `first_hour`: telnet scanners (some
/// Mirai), UDP, backscatter; `salt` varies the sources between runs.
fn run(first_hour: i64, hours: i64, salt: u8, bucket_ns: i64) -> Telescope {
    let mut t = Telescope::new(TelescopeConfig {
        darknets: Vec::new(),
        bucket_ns,
        detail: true,
        ..Default::default()
    });
    for h in first_hour..first_hour + hours {
        for i in 0..40u32 {
            let ts = T0 + h * HOUR + i as i64 * 60_000_000_000;
            let src = [10, salt, (i % 7) as u8, (i % 13) as u8];
            let port = [23u16, 2323, 80][(i % 3) as usize];
            t.ingest(
                ts,
                LinkType::RawIp,
                &tcp4(src, (i % 5) as u8, port, 0x02, i % 4 == 0),
            );
            if i % 5 == 0 {
                t.ingest(ts + 1, LinkType::RawIp, &udp4([172, 16, salt, i as u8], 53));
                t.ingest(
                    ts + 2,
                    LinkType::RawIp,
                    &tcp4([203, 0, 113, salt], 9, 443, 0x12, false),
                );
            }
        }
    }
    t.flush();
    t.finish();
    t
}

fn file(hash: &str, path: &str) -> IngestedFile {
    IngestedFile {
        content_hash: hash.into(),
        path: path.into(),
        frames: 10,
        status: "complete".into(),
        ingested_at: "2016-10-02T00:00:00Z".into(),
        implausible_time: 1,
        capture_loss: None,
    }
}

fn alert(ip: &str, port: Option<u16>, problem: &str, last_seen: &str) -> AlertRecord {
    AlertRecord {
        ip: ip.into(),
        problem: problem.into(),
        port,
        service: port.map(|_| "telnet".into()),
        severity: "high".into(),
        isp: Some("Example Net".into()),
        device: None,
        evidence: "{\"user\":\"root\"}".into(),
        advice: "change the password".into(),
        first_seen: "2016-10-01T00:00:00Z".into(),
        last_seen: last_seen.into(),
        status: String::new(),
    }
}

fn detection(key: &str, first_h: i64, last_h: i64, severity: &str, score: f64) -> DetectionRecord {
    DetectionRecord {
        key: key.into(),
        first_bucket_ns: T0 + first_h * HOUR,
        last_bucket_ns: T0 + last_h * HOUR,
        kind: "scan_campaign".into(),
        severity: severity.into(),
        proto: "tcp".into(),
        ports: "23".into(),
        score,
        peak_score: 0.0,
        body: format!("{{\"score\":{score}}}"),
        created_at: String::new(),
        updated_at: String::new(),
        notified_at: None,
    }
}

/// What a store answered, in order, with the times it stamps itself
/// (ingest, history, detection bookkeeping) masked.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    fn add(&mut self, what: &str, v: impl std::fmt::Debug) {
        self.0.push(format!("{what}: {v:?}"));
    }
}

/// The whole scenario against one store; asserts what it knows and
/// returns the transcript for the engines' comparison.
fn scenario(s: &mut dyn Store) -> Transcript {
    let mut out = Transcript::default();
    assert_eq!(s.bucket_ns().unwrap(), None);
    assert_eq!(s.newest_bucket_end().unwrap(), None);
    assert_eq!(s.version().unwrap(), "0/");

    // Telescope: two runs into overlapping buckets (the second merges into
    // three stored ones), then a sensor commit with capture counters.
    let a = run(0, 5, 1, HOUR);
    let b = run(3, 4, 2, HOUR);
    s.save_run(&a, &[file("aaa", "a.pcap")]).unwrap();
    s.save_run(&b, &[file("bbb", "b.pcap")]).unwrap();
    let mut commit = file("ccc", "interface eth1");
    commit.capture_loss = Some(CaptureLoss {
        interface: "eth1".into(),
        bucket_start_ns: T0 + 6 * HOUR,
        received: 100,
        dropped: 7,
        if_dropped: 1,
    });
    // The sensor's commit goes through a spool (as when the store was
    // away): written back from its bytes, it stores what its telescope
    // would (the report below equals one run of all the frames).
    let dir = tempfile::tempdir().unwrap();
    let mut spool = iotscope_store::Spool::open(&dir.path().join("s.spool"), 1 << 30).unwrap();
    let sensor = run(6, 1, 3, HOUR);
    spool
        .push(&iotscope_store::SpooledRun::of(&sensor), &[commit.clone()])
        .unwrap();
    // Twice: the second is the same commit, found there and not written.
    spool
        .push(&iotscope_store::SpooledRun::of(&sensor), &[commit])
        .unwrap();
    let mut forwarded = Vec::new();
    let n = spool
        .forward(
            |i| iotscope_store::save_spooled_item(s, i),
            None,
            |f| forwarded.push(f.already_stored),
        )
        .unwrap();
    assert_eq!((n, forwarded), (2, vec![false, true]));
    assert_eq!(s.bucket_ns().unwrap(), Some(HOUR));
    // The same content again, or listed twice, or another bucket length:
    // refused, and nothing of it stored.
    let version = s.version().unwrap();
    assert!(matches!(
        s.save_run(&run(0, 1, 9, HOUR), &[file("aaa", "again.pcap")]),
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.save_run(&run(0, 1, 9, HOUR), &[file("ddd", "x"), file("ddd", "y")]),
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.save_run(&run(0, 1, 9, 60_000_000_000), &[file("eee", "m.pcap")]),
        Err(StoreError::BucketLength { .. })
    ));
    assert_eq!(s.version().unwrap(), version);
    assert!(version.starts_with("3/"), "{version}");
    out.add("find_file", s.find_file("aaa").unwrap());
    assert!(s.find_file("zzz").unwrap().is_none());

    // The stored report equals the report of the same frames in one run.
    let whole = ReportQuery {
        top: 50,
        ..Default::default()
    };
    let stored = s.report(&whole).unwrap();
    assert_eq!(stored.packets, a.totals().packets + b.totals().packets + 56);
    assert_eq!(stored.packets, 10 * 56);
    out.add("report", &stored);
    let part = ReportQuery {
        since_ns: Some(T0 + 2 * HOUR),
        until_ns: Some(T0 + 5 * HOUR),
        ports: vec![iotscope_telescope::parse_port("23/tcp").unwrap()],
        top: 5,
        series_top: Some(2),
        ..Default::default()
    };
    out.add("report part", s.report(&part).unwrap());
    // The daily rollup gives every figure over the period as the buckets
    // do, in a series of one day; `coarsest` picks it.
    let day = s
        .report(&ReportQuery {
            tier: TierChoice::Exactly(Tier::Day),
            ..whole.clone()
        })
        .unwrap();
    assert_same_figures(&day, &stored);
    assert_eq!(day.tier.as_deref(), Some("day"));
    assert_eq!(day.series.len(), 1);
    assert_eq!(day.series[0].packets, stored.packets);
    assert_eq!(day.series[0].sources, stored.sources);
    let coarsest = s
        .report(&ReportQuery {
            tier: TierChoice::Coarsest,
            ..whole.clone()
        })
        .unwrap();
    assert_eq!(coarsest, day);
    out.add("report day", &day);
    // Not on a whole day: refused, saying why.
    let e = s
        .report(&ReportQuery {
            since_ns: Some(T0 + HOUR),
            tier: TierChoice::Exactly(Tier::Day),
            ..whole.clone()
        })
        .unwrap_err();
    assert!(e.to_string().contains("is not on a whole day"), "{e}");
    out.add("coverage", format!("{:?}", s.coverage().unwrap()));
    out.add("oldest", s.oldest_bucket_start().unwrap());
    assert_eq!(s.oldest_bucket_start().unwrap(), Some(T0));
    assert_eq!(s.newest_bucket_end().unwrap(), Some(T0 + 7 * HOUR));
    let series = s
        .port_series(
            None,
            None,
            &[("tcp".into(), 23), ("udp".into(), 53), ("tcp".into(), 1)],
        )
        .unwrap();
    assert_eq!(series.starts.len(), 7);
    assert!(series.lines[2].0.iter().all(|&p| p == 0));
    out.add("port_series", &series);
    let activity = s.port_activity(Some(T0 + HOUR), None).unwrap();
    assert_eq!(activity.len(), 6);
    out.add("port_activity", &activity);
    let ports = [
        iotscope_telescope::parse_port("23/tcp").unwrap(),
        iotscope_telescope::parse_port("53/udp").unwrap(),
    ];
    let mut sketches: Vec<(i64, u32, u64)> = s
        .port_sketches(None, Some(T0 + 4 * HOUR), &ports)
        .unwrap()
        .into_iter()
        .map(|(start, port, sk)| (start, port, sk.count()))
        .collect();
    sketches.sort_unstable();
    assert!(!sketches.is_empty());
    out.add("port_sketches", &sketches);
    let mut sources = Vec::new();
    s.each_bucket_source(
        Some(T0 + 3 * HOUR),
        Some(T0 + 4 * HOUR),
        &mut |start, a, c| sources.push((start, a.to_string(), c.packets, c.mirai, c.class_mask)),
    )
    .unwrap();
    sources.sort();
    assert!(!sources.is_empty());
    out.add("each_bucket_source", &sources);
    let persistence = s.fingerprint_persistence().unwrap();
    assert!(persistence.iter().any(|p| p.buckets >= 2));
    out.add("fingerprint_persistence", &persistence);
    for q in [
        MapQuery {
            limit: 5,
            ..Default::default()
        },
        MapQuery {
            port: Some(("udp".into(), 53)),
            limit: 100,
            ..Default::default()
        },
        MapQuery {
            port: Some(("tcp".into(), 9999)),
            since_ns: Some(T0 + HOUR),
            until_ns: Some(T0 + 2 * HOUR),
            limit: 10,
        },
    ] {
        out.add("map_sources", s.map_sources(&q).unwrap());
    }
    let totals = s.capture_totals().unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!((totals[0].received, totals[0].dropped), (100, 7));
    out.add("capture_totals", &totals);
    out.add("capture_loss", s.capture_loss(None, None).unwrap());

    // Survey: a later observation replaces the earlier, keeping first seen.
    let obs = |ts: &str, status: &str, port: u16| ServiceObservation {
        ip: "198.18.5.5".into(),
        port,
        proto: "tcp".into(),
        ts: ts.into(),
        status: status.into(),
        service: Some("telnet".into()),
        banner: Some("{\"banner\":\"login: \\u0000é\"}".into()),
    };
    s.save_services(&[
        obs("2016-10-01T00:00:00Z", "open", 23),
        obs("2016-10-01T00:00:00Z", "refused", 22),
    ])
    .unwrap();
    s.save_services(&[obs("2016-10-02T00:00:00Z", "timeout", 23)])
        .unwrap();
    let services = s.services().unwrap();
    assert_eq!(services.len(), 2);
    assert_eq!(services[1].status, "timeout");
    out.add("services", &services);
    let finding = |ip: &str, port: u16, kind: &str, ts: &str| FindingRecord {
        ip: ip.into(),
        port,
        service: "telnet".into(),
        kind: kind.into(),
        severity: "critical".into(),
        device: Some("{\"vendor\":\"x\"}".into()),
        evidence: "{\"password\":\"klv123\"}".into(),
        ts: ts.into(),
        first_seen: String::new(),
    };
    let mut rows = Vec::new();
    for i in 0..7u8 {
        rows.push(finding(
            &format!("198.18.0.{}", 10 - i),
            23,
            "default_credential",
            "2016-10-01T00:00:00Z",
        ));
    }
    rows.push(finding(
        "198.18.0.10",
        80,
        "open_control_panel",
        "2016-10-01T00:00:00Z",
    ));
    s.save_findings(&rows).unwrap();
    s.save_findings(&[finding(
        "198.18.0.10",
        23,
        "default_credential",
        "2016-10-03T00:00:00Z",
    )])
    .unwrap();
    let all = s.findings().unwrap();
    assert_eq!(all.len(), 8);
    let mut paged = Vec::new();
    let mut after: Option<(String, u16, String)> = None;
    loop {
        let page = s.findings_page(after.as_ref(), 3).unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.ip.clone(), last.port, last.kind.clone()));
        paged.extend(page);
    }
    assert_eq!(paged, all);
    out.add("findings", &all);

    // Blocklist: new entries counted once; the first source kept.
    let entry = |value: &str, source: &str| BlocklistRecord {
        value: value.into(),
        kind: "ip".into(),
        port: Some(443),
        malware: "mirai".into(),
        source: source.into(),
        first_seen: "2016-09-30T00:00:00Z".into(),
    };
    assert_eq!(
        s.save_blocklist(&[
            entry("198.51.100.1", "feodo"),
            entry("198.51.100.2", "feodo")
        ])
        .unwrap(),
        2
    );
    assert_eq!(
        s.save_blocklist(&[
            entry("198.51.100.1", "urlhaus"),
            entry("198.51.100.3", "urlhaus")
        ])
        .unwrap(),
        1
    );
    let bl = s.blocklist().unwrap();
    assert_eq!(bl[0].source, "feodo");
    out.add("blocklist", &bl);

    // Alerts: per service; fixed then seen again is persisting.
    let (c, u) = s
        .merge_alerts(&[
            alert(
                "198.18.0.9",
                Some(23),
                "default_credential",
                "2016-10-01T00:00:00Z",
            ),
            alert(
                "198.18.0.9",
                Some(2323),
                "default_credential",
                "2016-10-01T00:00:00Z",
            ),
            alert("198.18.0.8", None, "infected_mirai", "2016-10-01T00:00:00Z"),
        ])
        .unwrap();
    assert_eq!((c, u), (3, 0));
    assert!(s
        .set_alert_status(
            "198.18.0.9",
            Some(23),
            "default_credential",
            "fixed",
            "re-checked"
        )
        .unwrap());
    assert!(!s
        .set_alert_status(
            "198.18.0.9",
            Some(24),
            "default_credential",
            "fixed",
            "no such"
        )
        .unwrap());
    let (c, u) = s
        .merge_alerts(&[alert(
            "198.18.0.9",
            Some(23),
            "default_credential",
            "2016-10-05T00:00:00Z",
        )])
        .unwrap();
    assert_eq!((c, u), (0, 1));
    let alerts = s.alerts().unwrap();
    assert_eq!(alerts.len(), 3);
    out.add("alerts", &alerts);
    let mine = s.alerts_for_ip("198.18.0.9").unwrap();
    assert_eq!(
        mine.iter().find(|a| a.port == Some(23)).unwrap().status,
        "persisting"
    );
    out.add("alerts_for_ip", &mine);
    let history: Vec<(String, String)> = s
        .alert_history("198.18.0.9", Some(23), "default_credential")
        .unwrap()
        .into_iter()
        .map(|(_, status, note)| (status, note))
        .collect();
    assert_eq!(
        history.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        ["new", "fixed", "persisting"]
    );
    out.add("alert_history", &history);

    // Accounts and sessions.
    let user = |name: &str, hash: &str| UserRecord {
        name: name.into(),
        password_hash: hash.into(),
        role: "isp".into(),
        isp: Some("Example Net".into()),
        created: "2016-10-01T00:00:00Z".into(),
    };
    let session = |token: &str, name: &str, expires_ns: i64| SessionRecord {
        token_hash: token.into(),
        user: name.into(),
        kind: "session".into(),
        csrf: "c".into(),
        created: "2016-10-01T00:00:00Z".into(),
        expires_ns,
    };
    s.put_user(&user("ann", "h1")).unwrap();
    s.put_user(&user("bob", "h2")).unwrap();
    s.put_session(&session("t1", "ann", 100), 0).unwrap();
    s.put_session(&session("t2", "bob", 50), 0).unwrap();
    assert!(s.session("t1", 10).unwrap().is_some());
    assert!(s.session("t2", 60).unwrap().is_none(), "expired");
    out.add("session", s.session("t1", 10).unwrap());
    s.put_user(&user("ann", "h3")).unwrap();
    assert!(
        s.session("t1", 10).unwrap().is_none(),
        "a new password ends sessions"
    );
    s.put_session(&session("t3", "bob", 200), 60).unwrap();
    s.delete_session("t3").unwrap();
    assert!(s.session("t3", 70).unwrap().is_none());
    assert!(s.delete_user("bob").unwrap());
    assert!(!s.delete_user("bob").unwrap());
    out.add("users", s.users().unwrap());

    // Honeypot sessions: a record sent again is stored once.
    let h = HoneypotSession {
        sensor: "hp1".into(),
        id: "00000000000a".into(),
        protocol: "telnet".into(),
        src_ip: "198.51.100.7".into(),
        src_port: 40000,
        dst_ip: "198.18.0.1".into(),
        dst_port: 23,
        start_ns: T0,
        end_ns: T0 + 5_000_000_000,
        login: Some(("root".into(), "xc3511".into())),
        logins: vec![
            (T0 + 1, "root".into(), "x".into(), false),
            (T0 + 2, "root".into(), "xc3511".into(), true),
        ],
        commands: vec![
            (T0 + 3, "enable".into(), true),
            (T0 + 4, "/bin/busybox ECCHI".into(), false),
        ],
        downloads: vec![(
            "wget".into(),
            "http://198.51.100.9/m".into(),
            Some("198.51.100.9".into()),
            Some(80),
        )],
        payloads: vec![("/tmp/m".into(), "ab".repeat(32), 1234, false)],
        input_sha256: "cd".repeat(32),
        reason: "closed".into(),
        linked: None,
        truncated: 0,
    };
    assert!(s.save_honeypot_session(&h).unwrap());
    assert!(!s.save_honeypot_session(&h).unwrap());
    let mut later = h.clone();
    later.id = "00000000000b".into();
    later.start_ns += HOUR;
    later.login = None;
    later.linked = Some(("00000000000a".into(), "198.51.100.7".into()));
    s.save_honeypot_session(&later).unwrap();
    let got = s.honeypot_sessions(None, None, 10).unwrap();
    assert_eq!(got, vec![h.clone(), later.clone()]);
    assert_eq!(
        s.honeypot_sessions(Some(T0 + 1), None, 10).unwrap(),
        vec![later]
    );
    assert_eq!(s.honeypot_sessions(None, None, 1).unwrap(), vec![h]);

    // Survey shards: each shard's last report, first start kept; a run is
    // complete when every shard of 0..N reported final counts.
    let shard = |run: &str, i: u32, n: u32, state: &str, sent: u64, at: &str| SurveyShard {
        run: run.into(),
        shard: i,
        shards: n,
        seed: u64::MAX - 1,
        host: format!("scanner{i}"),
        pairs: 100,
        sent,
        open: sent / 10,
        findings: 1,
        state: state.into(),
        started: at.into(),
        updated: at.into(),
    };
    s.put_survey_shard(&shard("r1", 0, 2, "running", 10, "2016-10-01T00:00:00Z"))
        .unwrap();
    s.put_survey_shard(&shard("r1", 0, 2, "final", 100, "2016-10-01T00:05:00Z"))
        .unwrap();
    s.put_survey_shard(&shard("r1", 1, 2, "running", 50, "2016-10-01T00:03:00Z"))
        .unwrap();
    s.put_survey_shard(&shard("r0", 2, 3, "final", 100, "2016-09-30T00:00:00Z"))
        .unwrap();
    let r1 = s.survey_shards(Some("r1")).unwrap();
    assert_eq!(r1.len(), 2);
    assert_eq!(
        (r1[0].started.as_str(), r1[0].updated.as_str()),
        ("2016-10-01T00:00:00Z", "2016-10-01T00:05:00Z")
    );
    assert_eq!(r1[0].seed, u64::MAX - 1);
    let status = SurveyRunStatus::of(s.survey_shards(None).unwrap());
    assert_eq!(
        status
            .iter()
            .map(|r| (r.run.as_str(), r.complete))
            .collect::<Vec<_>>(),
        [("r0", false), ("r1", false)]
    );
    assert_eq!(status[0].missing, [0, 1]);
    s.put_survey_shard(&shard("r1", 1, 2, "final", 100, "2016-10-01T00:09:00Z"))
        .unwrap();
    let status = SurveyRunStatus::of(s.survey_shards(Some("r1")).unwrap());
    assert!(status[0].complete);
    assert_eq!((status[0].sent, status[0].open), (200, 20));
    out.add("survey_shards", s.survey_shards(None).unwrap());

    // Detections: episodes within the cool-down merge; a row between two
    // episodes bridges them; a higher severity re-opens delivery.
    let created = s
        .merge_detections(
            &[
                detection("campaign:tcp/23", 0, 0, "medium", 2.0),
                detection("campaign:tcp/23", 10, 10, "low", 1.0),
            ],
            HOUR,
        )
        .unwrap();
    assert_eq!(created.iter().filter(|c| c.2).count(), 2);
    assert!(s
        .mark_detection_notified("campaign:tcp/23", T0, "2016-10-01T01:00:00Z")
        .unwrap());
    assert!(!s
        .mark_detection_notified("campaign:tcp/23", T0 + 1, "x")
        .unwrap());
    let merged = s
        .merge_detections(&[detection("campaign:tcp/23", 1, 1, "medium", 5.0)], HOUR)
        .unwrap();
    assert_eq!(merged, vec![("campaign:tcp/23".to_string(), T0, false)]);
    let bridged = s
        .merge_detections(&[detection("campaign:tcp/23", 2, 9, "critical", 3.0)], HOUR)
        .unwrap();
    assert_eq!(bridged, vec![("campaign:tcp/23".to_string(), T0, false)]);
    let dets = s.detections(None, None, 10).unwrap();
    assert_eq!(dets.len(), 1);
    assert_eq!(
        (
            dets[0].severity.as_str(),
            dets[0].peak_score,
            dets[0].notified_at.as_deref()
        ),
        ("critical", 5.0, None)
    );
    let masked: Vec<_> = dets
        .into_iter()
        .map(|mut d| {
            d.created_at.clear();
            d.updated_at.clear();
            d
        })
        .collect();
    out.add("detections", masked);

    // Retention: the buckets kept one hour, at the end of the next day:
    // every bucket goes (the daily rollup holds them), reports read the
    // days and give the same figures, and the buckets are no more.
    let pruned = s
        .prune(
            &Retention {
                keep_ns: [Some(HOUR), None, None],
            },
            T0 + 48 * HOUR - 1,
        )
        .unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!((pruned[0].tier, pruned[0].periods), (Tier::Bucket, 7));
    assert_eq!(pruned[0].before_ns, T0 + 24 * HOUR);
    let after = s.report(&whole).unwrap();
    assert_eq!(after.tier.as_deref(), Some("day"));
    assert_same_figures(&after, &stored);
    let e = s
        .report(&ReportQuery {
            tier: TierChoice::Exactly(Tier::Bucket),
            ..whole.clone()
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Tier { .. }), "{e}");
    // A finer tier kept longer than the coarser one replacing it: refused.
    assert!(matches!(
        s.prune(
            &Retention {
                keep_ns: [Some(48 * HOUR), None, Some(HOUR)],
            },
            T0 + 48 * HOUR
        ),
        Err(StoreError::Tier { .. })
    ));
    out.add("after prune", &after);
    out.add(
        "coverage after prune",
        format!("{:?}", s.coverage().unwrap()),
    );
    out
}

/// Every figure over the whole period, which every tier gives alike.
fn assert_same_figures(
    a: &iotscope_telescope::summary::Summary,
    b: &iotscope_telescope::summary::Summary,
) {
    assert_eq!(
        (a.packets, a.bytes, a.sources, &a.first_ts, &a.last_ts),
        (b.packets, b.bytes, b.sources, &b.first_ts, &b.last_ts)
    );
    assert_eq!((a.outside, a.malformed), (b.outside, b.malformed));
    assert_eq!(a.classes, b.classes);
    assert_eq!(a.ports, b.ports);
    assert_eq!(a.fingerprints, b.fingerprints);
    assert_eq!(a.infected, b.infected);
    assert_eq!(a.top_sources, b.top_sources);
    assert_eq!(a.estimated, b.estimated);
}

#[test]
fn sqlite_answers_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = iotscope_store::open(&iotscope_store::Locator::parse(
        dir.path().join("s.db").as_os_str(),
    ))
    .unwrap();
    scenario(s.as_mut());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_answers_as_sqlite_does() {
    let Some(url) = iotscope_store::testing::fresh_database("conformance") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut lite = iotscope_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let mut pg = iotscope_store::open(&iotscope_store::Locator::parse(url.as_ref())).unwrap();
    let want = scenario(&mut lite);
    let got = scenario(pg.as_mut());
    assert_eq!(want.0.len(), got.0.len());
    for (w, g) in want.0.iter().zip(&got.0) {
        assert_eq!(w, g, "the engines differ");
    }
    // Opening again finds the schema migrated.
    assert!(iotscope_store::PgStore::open(&url).is_ok());
}

/// Every read of a filled store, for comparing a store with its copy.
fn reads(s: &dyn Store) -> Vec<String> {
    let mut out = Transcript::default();
    out.add("bucket_ns", s.bucket_ns().unwrap());
    out.add(
        "report",
        s.report(&ReportQuery {
            top: 100,
            ..Default::default()
        })
        .unwrap(),
    );
    out.add("port_activity", s.port_activity(None, None).unwrap());
    out.add("services", s.services().unwrap());
    out.add("findings", s.findings().unwrap());
    out.add("blocklist", s.blocklist().unwrap());
    out.add("alerts", s.alerts().unwrap());
    out.add(
        "history",
        s.alert_history("198.18.0.9", Some(23), "default_credential")
            .unwrap(),
    );
    out.add("users", s.users().unwrap());
    out.add("honeypot", s.honeypot_sessions(None, None, 100).unwrap());
    out.add("detections", s.detections(None, None, 100).unwrap());
    out.add("survey_shards", s.survey_shards(None).unwrap());
    out.add("capture_totals", s.capture_totals().unwrap());
    out.add("version", s.version().unwrap());
    out.add(
        "map",
        s.map_sources(&MapQuery {
            limit: 50,
            ..Default::default()
        })
        .unwrap(),
    );
    out.0
}

#[test]
fn a_copied_sqlite_store_reads_as_the_original() {
    use iotscope_store::Locator;
    let dir = tempfile::tempdir().unwrap();
    let from = Locator::Sqlite(dir.path().join("from.db"));
    let to = Locator::Sqlite(dir.path().join("to.db"));
    scenario(iotscope_store::open(&from).unwrap().as_mut());
    let mut seen = Vec::new();
    let tables =
        iotscope_store::copy(&from, &to, &mut |t, n| seen.push((t.to_string(), n))).unwrap();
    assert_eq!(tables.len(), seen.len());
    // The scenario ends with the buckets pruned: the days hold them.
    assert!(tables
        .iter()
        .any(|t| t.table == "daily_source_blocks" && t.rows > 0));
    assert!(tables.iter().any(|t| t.table == "settings" && t.rows >= 2));
    let (a, b) = (
        iotscope_store::open(&from).unwrap(),
        iotscope_store::open(&to).unwrap(),
    );
    assert_eq!(reads(a.as_ref()), reads(b.as_ref()));
    // Into a store that holds rows, or onto itself: refused, nothing written.
    assert!(matches!(
        iotscope_store::copy(&from, &to, &mut |_, _| {}),
        Err(StoreError::CopyTarget { .. })
    ));
    assert!(matches!(
        iotscope_store::copy(&from, &from, &mut |_, _| {}),
        Err(StoreError::CopyTarget { .. })
    ));
}

#[cfg(feature = "postgres")]
#[test]
fn a_store_copied_to_postgres_and_back_reads_as_the_original() {
    use iotscope_store::Locator;
    let Some(url) = iotscope_store::testing::fresh_database("copy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let from = Locator::Sqlite(dir.path().join("from.db"));
    let pg = Locator::Postgres(url);
    let back = Locator::Sqlite(dir.path().join("back.db"));
    scenario(iotscope_store::open(&from).unwrap().as_mut());
    let there = iotscope_store::copy(&from, &pg, &mut |_, _| {}).unwrap();
    let again = iotscope_store::copy(&pg, &back, &mut |_, _| {}).unwrap();
    assert_eq!(there, again, "checksums differ between the legs");
    let original = reads(iotscope_store::open(&from).unwrap().as_ref());
    assert_eq!(original, reads(iotscope_store::open(&pg).unwrap().as_ref()));
    assert_eq!(
        original,
        reads(iotscope_store::open(&back).unwrap().as_ref())
    );
    // The copy goes on working as a store: a new run merges into it.
    let mut s = iotscope_store::open(&pg).unwrap();
    s.save_run(&run(2, 1, 4, HOUR), &[file("fff", "later.pcap")])
        .unwrap();
    assert_eq!(s.report(&ReportQuery::default()).unwrap().packets, 11 * 56);
}

#[cfg(feature = "postgres")]
#[test]
fn a_store_whose_connection_the_server_ended_connects_again() {
    let Some(url) = iotscope_store::testing::fresh_database("reconnect") else {
        return;
    };
    let mut s = iotscope_store::PgStore::open(&url).unwrap();
    s.save_run(&run(0, 1, 1, HOUR), &[file("a1", "a.pcap")])
        .unwrap();
    // What a server restart or an administrator does to the session.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let ended: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    // The call that meets the closed connection may fail (nothing of it
    // is stored); the next one connects again.
    let second = run(1, 1, 2, HOUR);
    if s.save_run(&second, &[file("b1", "b.pcap")]).is_err() {
        s.save_run(&second, &[file("b1", "b.pcap")]).unwrap();
    }
    assert_eq!(s.report(&ReportQuery::default()).unwrap().packets, 2 * 56);
    assert_eq!(s.version().unwrap().split('/').next(), Some("2"));
}

#[cfg(feature = "postgres")]
fn month_partitions(url: &str, table: &str) -> Vec<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::text::regclass ORDER BY 1",
        &[&table],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_block_tables_are_partitioned_by_month_and_old_stores_move_into_them() {
    use std::io::{Read, Write};
    let (Some(a), Some(b)) = (
        iotscope_store::testing::fresh_database("months"),
        iotscope_store::testing::fresh_database("schema2"),
    ) else {
        return;
    };
    // A run over the end of September into October: two months.
    let mut s = iotscope_store::PgStore::open(&a).unwrap();
    s.save_run(&run(-2, 4, 1, HOUR), &[file("m1", "m.pcap")])
        .unwrap();
    let want = reads(&s);
    for table in [
        "bucket_source_blocks",
        "bucket_port_blocks",
        "bucket_port_sketches",
    ] {
        assert_eq!(
            month_partitions(&a, table),
            [format!("{table}_p201609"), format!("{table}_p201610")]
        );
    }
    // The same rows in a store as schema version 2 left it (tables not
    // partitioned): opened by this build, it moves them into partitions and
    // reads the same.
    let mut from = postgres::Client::connect(&a, postgres::NoTls).unwrap();
    let mut to = postgres::Client::connect(&b, postgres::NoTls).unwrap();
    to.batch_execute(include_str!("../sql/pg/001_schema.sql"))
        .unwrap();
    to.batch_execute(include_str!("../sql/pg/002_survey_shards.sql"))
        .unwrap();
    to.batch_execute(
        "CREATE TABLE iotscope_schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL);
         INSERT INTO iotscope_schema_migrations VALUES (1, 'x'), (2, 'x');",
    )
    .unwrap();
    for table in [
        "settings",
        "files",
        "buckets",
        "bucket_classes",
        "bucket_port_blocks",
        "bucket_port_sketches",
        "bucket_source_blocks",
        "port_source_blocks",
        "infected_port_blocks",
    ] {
        let mut rows = Vec::new();
        from.copy_out(&format!("COPY (SELECT * FROM {table}) TO STDOUT"))
            .unwrap()
            .read_to_end(&mut rows)
            .unwrap();
        let mut w = to.copy_in(&format!("COPY {table} FROM STDIN")).unwrap();
        w.write_all(&rows).unwrap();
        w.finish().unwrap();
    }
    assert!(month_partitions(&b, "bucket_source_blocks").is_empty());
    let old = iotscope_store::PgStore::open(&b).unwrap();
    assert_eq!(reads(&old), want);
    assert_eq!(month_partitions(&b, "bucket_source_blocks").len(), 2);
    // Copied into PostgreSQL, a store gets its partitions too.
    let dir = tempfile::tempdir().unwrap();
    let lite = iotscope_store::Locator::Sqlite(dir.path().join("l.db"));
    iotscope_store::copy(
        &iotscope_store::Locator::Postgres(b.clone()),
        &lite,
        &mut |_, _| {},
    )
    .unwrap();
    let c = iotscope_store::testing::fresh_database("monthscopy").unwrap();
    iotscope_store::copy(
        &lite,
        &iotscope_store::Locator::Postgres(c.clone()),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(month_partitions(&c, "bucket_port_sketches").len(), 2);
    assert_eq!(
        reads(
            iotscope_store::open(&iotscope_store::Locator::Postgres(c))
                .unwrap()
                .as_ref()
        ),
        want
    );
}

#[cfg(feature = "postgres")]
#[test]
fn writers_merging_the_same_new_alerts_at_once_create_each_once() {
    let Some(url) = iotscope_store::testing::fresh_database("alertrace") else {
        return;
    };
    iotscope_store::PgStore::open(&url).unwrap();
    let rows: Vec<AlertRecord> = (0..200)
        .map(|i| {
            alert(
                &format!("198.18.{}.{}", i / 250, i % 250),
                Some(23),
                "default_credential",
                "2016-10-01T00:00:00Z",
            )
        })
        .collect();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut s = iotscope_store::PgStore::open(&url).unwrap();
                    s.merge_alerts(&rows).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().map(|r| r.0).sum::<usize>(),
        200,
        "{results:?}"
    );
    assert!(results.iter().all(|r| r.0 + r.1 == 200), "{results:?}");
    let s = iotscope_store::PgStore::open(&url).unwrap();
    assert_eq!(s.alerts().unwrap().len(), 200);
    assert_eq!(
        s.alert_history("198.18.0.7", Some(23), "default_credential")
            .unwrap()
            .len(),
        1
    );
}

#[cfg(feature = "postgres")]
#[test]
fn a_role_that_may_only_read_reads_a_migrated_store() {
    let Some(url) = iotscope_store::testing::fresh_database("readonly") else {
        return;
    };
    let mut s = iotscope_store::PgStore::open(&url).unwrap();
    s.save_run(&run(0, 2, 1, HOUR), &[file("r1", "r.pcap")])
        .unwrap();
    let want = reads(&s);
    let role = format!("iotscope_reader_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    // The same server and database, as the reader.
    let reader_url = url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(reader_url, url);
    let r = iotscope_store::PgStore::open(&reader_url).unwrap();
    assert_eq!(reads(&r), want);
    drop(r);
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn an_empty_or_foreign_database_is_no_store_and_stays_untouched() {
    use iotscope_store::Locator;
    let Some(url) = iotscope_store::testing::fresh_database("empty") else {
        return;
    };
    let at = Locator::Postgres(url.clone());
    assert!(!at.exists().unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let tables = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(tables(&mut c), 0, "finding out created something");
    iotscope_store::PgStore::open(&url).unwrap();
    assert!(at.exists().unwrap());
    // A database in another encoding is refused with what to do.
    let latin = url.rsplit_once('/').unwrap().0.to_string()
        + "/"
        + &format!("iotscope_latin1_{}", std::process::id());
    let name = latin.rsplit('/').next().unwrap().to_string();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!(
        "CREATE DATABASE {name} ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    ))
    .unwrap();
    let err = iotscope_store::PgStore::open(&latin)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("LATIN1") && err.contains("UTF8"), "{err}");
}

#[cfg(feature = "postgres")]
#[test]
fn a_store_used_and_dropped_inside_an_async_runtime_does_not_panic() {
    let Some(url) = iotscope_store::testing::fresh_database("inruntime") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = iotscope_store::PgStore::open(&url).unwrap();
        s.save_run(&run(0, 1, 1, HOUR), &[file("x1", "x.pcap")])
            .unwrap();
        assert_eq!(s.report(&ReportQuery::default()).unwrap().packets, 56);
        drop(s);
    });
}
