//! Crash consistency: load runs while the server is `kill -9`ed at random moments, round after
//! round; after every restart the store opens and every batch the server acknowledged (204) is
//! there — whole, exactly once. Batches in flight at the kill may be lost (never acknowledged)
//! but never half-stored; their resend after the restart is stored once. At the end the
//! rollups count every stored batch's pageview and every session exactly once. The same rounds
//! run on sled and, when `HUSHTALE_TEST_CLICKHOUSE` names one, on ClickHouse.

mod common;
mod load_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{id, now_ms, TestServer};
use load_support::{client, config, Rng};
use serde_json::{json, Value};

const ROUNDS: usize = 6;
const SENDERS: u64 = 8;
/// Events per batch; each carries a marker so a batch can be found (and counted) in its session.
const EVENTS: u64 = 5;
/// A session gets this many batches, then its sender starts a new one.
const BATCHES_PER_SESSION: u32 = 12;

/// One sender's state, carried across rounds: what to send next and what was acknowledged.
#[derive(Clone)]
struct Sender {
    n: u64,
    session: u64,
    seq: u32,
    acked: Vec<(String, u32)>,
}

impl Sender {
    fn sid(&self) -> String {
        id(self.n * 1_000_000 + self.session)
    }
}

/// A batch whose events say which (sender, session, seq) they belong to: `y` = seq*100 + i.
/// It opens with a pageview and ends with a form started and submitted, so the rollups (and the
/// form and attention rollups) count each stored batch once.
fn batch(s: &Sender) -> Value {
    let t = now_ms();
    let view = json!({"k": "view", "t": t, "url": "https://shop.example/crash", "vw": 1280, "vh": 800, "dw": 1280, "dh": 2400});
    let events: Vec<Value> = std::iter::once(view)
        .chain((0..EVENTS).map(|i| {
            if i % 2 == 0 {
                json!({"k": "scroll", "t": t + i as i64, "y": s.seq as u64 * 100 + i})
            } else {
                json!({"k": "move", "t": t + i as i64, "x": s.n, "y": s.seq as u64 * 100 + i})
            }
        }))
        .chain([
            json!({"k": "focus", "t": t + 10, "sel": "input[name=q]", "form": "form#search"}),
            json!({"k": "submit", "t": t + 11, "form": "form#search"}),
        ])
        .collect();
    json!({"v": 1, "site": "demo", "vid": id(s.n), "sid": s.sid(), "seq": s.seq, "sent": t, "events": events})
}

/// Sends until `stop`; a batch that got no 204 (the server died, or refused) is sent again.
fn run_sender(mut s: Sender, base: String, stop: Arc<AtomicBool>, acks: Arc<AtomicUsize>) -> Sender {
    let http = client(Duration::from_secs(5));
    while !stop.load(Ordering::Relaxed) {
        let body = batch(&s);
        match http.post(format!("{base}/collect")).json(&body).send() {
            Ok(r) if r.status() == 204 => {
                s.acked.push((s.sid(), s.seq));
                acks.fetch_add(1, Ordering::Relaxed);
                s.seq += 1;
                if s.seq == BATCHES_PER_SESSION {
                    s.session += 1;
                    s.seq = 0;
                }
            }
            Ok(r) if r.status() == 503 => std::thread::sleep(Duration::from_millis(5)),
            Ok(r) => panic!("unexpected status {} under load", r.status()),
            // Connection refused or reset: the server is being killed. Try again, unchanged.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    s
}

/// Every acknowledged batch is in its session with all its events, and no batch twice.
fn check(server: &TestServer, senders: &[Sender]) -> usize {
    let mut by_session: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for s in senders {
        for (sid, seq) in &s.acked {
            by_session.entry(sid).or_default().insert(*seq);
        }
    }
    for (sid, acked) in &by_session {
        let (status, body) = server.api(&format!("/api/sites/demo/sessions/{sid}"));
        assert_eq!(status, 200, "session {sid} with acknowledged batches {acked:?} is missing");
        // marker -> how often it occurs
        let mut markers: BTreeMap<u64, usize> = BTreeMap::new();
        for e in body["events"].as_array().unwrap().iter().filter(|e| e["k"] == "scroll" || e["k"] == "move") {
            *markers.entry(e["y"].as_f64().unwrap() as u64).or_default() += 1;
        }
        let mut stored = BTreeSet::new();
        for (marker, n) in &markers {
            assert_eq!(*n, 1, "session {sid}: event {marker} stored {n} times (a batch counted twice)");
            stored.insert((marker / 100) as u32);
        }
        for seq in &stored {
            let whole = (0..EVENTS).all(|i| markers.contains_key(&(*seq as u64 * 100 + i)));
            assert!(whole, "session {sid}: batch {seq} is stored only in part");
        }
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "session {sid}: acknowledged batches {lost:?} lost (stored: {stored:?})");
    }
    by_session.values().map(BTreeSet::len).sum()
}

/// Every stored batch's pageview, form start and submit, and every session, is counted once
/// (in the day rollups, the form rollups and the attention rollups): waits (up to `wait`) for
/// counts that a restarted store completes in the background, then compares.
fn check_rollups(server: &TestServer, senders: &[Sender], batches: usize, wait: Duration) {
    let sessions: BTreeSet<String> = senders.iter().flat_map(|s| s.acked.iter().map(|(sid, _)| sid.clone())).collect();
    let b = batches as u64;
    let want = [b, sessions.len() as u64, b, b, b];
    let started = std::time::Instant::now();
    loop {
        let (status, stats) = server.api("/api/sites/demo/stats");
        assert_eq!(status, 200);
        let (status, forms) = server.api("/api/sites/demo/forms?path=/crash");
        assert_eq!(status, 200);
        let (status, attention) = server.api("/api/sites/demo/attention?path=/crash");
        assert_eq!(status, 200);
        let totals = &stats["totals"];
        let form = &forms["forms"][0];
        let got = [
            totals["pageviews"].as_u64().unwrap(),
            totals["sessions"].as_u64().unwrap(),
            form["starters"].as_u64().unwrap_or(0),
            form["submits"].as_u64().unwrap_or(0),
            attention["pageviews"].as_u64().unwrap(),
        ];
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < wait,
            "[pageviews, sessions, form starters, submits, attention pageviews] counted {got:?}, stored {want:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_batch() {
    kill_rounds("", Duration::ZERO);
}

/// The same rounds on ClickHouse: a collector killed between its claim, its confirmation and
/// its rollup inserts leaves counts that the restarted one completes, never doubles.
#[test]
fn kill_9_on_clickhouse_neither_loses_nor_double_counts() {
    let Some(ch) = std::env::var("HUSHTALE_TEST_CLICKHOUSE").ok().filter(|s| !s.is_empty()) else {
        eprintln!(
            "NOTE: ClickHouse crash rounds skipped; scripts/with-clickhouse.sh cargo test --test crash runs them"
        );
        return;
    };
    let db = format!("hushtale_crash_{}_{}", std::process::id(), now_ms());
    // Given-up writers are waited for 10 s, the sweep runs every 5 s: counts settle in < 30 s.
    kill_rounds(&format!("store = \"clickhouse+{}/{db}\"\n", ch.trim_end_matches('/')), Duration::from_secs(40));
    let _ = client(Duration::from_secs(10))
        .post(format!("{}/", ch.trim_end_matches('/')))
        .body(format!("DROP DATABASE {db}"))
        .send();
}

fn kill_rounds(store_line: &str, settle: Duration) {
    let mut rng = Rng::from_time();
    // Small groups so that a kill lands between, and inside, many group commits.
    let mut server = TestServer::start_with_config(Some(&config(&format!("{store_line}[limits]\nmax_group = 16\n"))));
    let mut senders: Vec<Sender> =
        (0..SENDERS).map(|n| Sender { n: n + 1, session: 0, seq: 0, acked: Vec::new() }).collect();

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = senders
            .drain(..)
            .map(|s| {
                let (base, stop, acks) = (server.base.clone(), stop.clone(), acks.clone());
                std::thread::spawn(move || run_sender(s, base, stop, acks))
            })
            .collect();
        // Kill once the load is really flowing, at a random moment after that.
        let want = 20 + rng.below(60) as usize;
        while acks.load(Ordering::Relaxed) < want {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        server.kill();
        // Senders keep trying (and failing) for a moment against the dead server.
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        senders = handles.into_iter().map(|h| h.join().unwrap()).collect();

        // The store must open after every crash; then nothing acknowledged may be missing.
        server.restart();
        let checked = check(&server, &senders);
        eprintln!(
            "round {round}: killed after {} acks; {checked} acknowledged batches all present",
            acks.load(Ordering::Relaxed)
        );
        assert_eq!(server.api("/api/sites/demo/stats").0, 200);
    }

    // Resending after the last crash: whatever was in flight is stored once, acknowledged now.
    // (On ClickHouse a session the dead collector was mid-commit on is waited for ~10 s first.)
    let http = client(Duration::from_secs(60));
    for s in &mut senders {
        let r = http.post(server.url("/collect")).json(&batch(s)).send().unwrap();
        assert_eq!(r.status(), 204);
        s.acked.push((s.sid(), s.seq));
    }
    let batches = check(&server, &senders);
    check_rollups(&server, &senders, batches, settle);
    assert_eq!(server.stop(), Some(0), "clean stop after the crashes");
}
