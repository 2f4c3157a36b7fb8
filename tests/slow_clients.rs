//! Slow clients: a slowloris (headers trickled forever) and a stalled body are cut off by the
//! header and body timeouts, and a connection limit keeps them from starving the server, while
//! well-behaved clients are still served. Timeouts here are small and configured; assertions
//! never measure time (a generous socket timeout only keeps a broken server from hanging).

mod common;
mod load_support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{batch, id, moves, now_ms, TestServer};
use load_support::{client, config, UA};

const LIMITS: &str = "[limits]\nheader_timeout_ms = 300\nbody_timeout_ms = 300\nmax_connections = 8\n";

fn connect(s: &TestServer) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    // Far above the configured timeouts: only a server that never cuts us off trips it.
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent. Panics if it never does.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return String::from_utf8_lossy(&seen).into_owned()
            }
            Err(e) => panic!("the server never closed a slow connection: {e}"),
        }
    }
}

fn good_request(s: &TestServer, n: u64) -> u16 {
    let b = batch(&id(1), &id(n), 0, moves(now_ms(), 5));
    client(Duration::from_secs(20)).post(s.url("/collect")).json(&b).send().unwrap().status().as_u16()
}

#[test]
fn slowloris_is_cut_off_by_the_header_timeout() {
    let s = TestServer::start_with_config(Some(&config(LIMITS)));
    let mut stream = connect(&s);
    stream.write_all(b"POST /collect HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Trickle a header byte now and then, never finishing the head. The server must hang up.
    let closed = Arc::new(AtomicBool::new(false));
    let trickle = {
        let mut stream = stream.try_clone().unwrap();
        let closed = closed.clone();
        std::thread::spawn(move || {
            for _ in 0..400 {
                if closed.load(Ordering::Relaxed) || stream.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let answer = read_until_closed(&mut stream);
    closed.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "unexpected answer {answer:?}");
    assert_eq!(good_request(&s, 1), 204);
}

#[test]
fn stalled_body_gets_408_and_the_connection_is_closed() {
    let s = TestServer::start_with_config(Some(&config(LIMITS)));
    let mut stream = connect(&s);
    let head = format!(
        "POST /collect HTTP/1.1\r\nHost: x\r\nUser-Agent: {UA}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"v\":1,"
    );
    stream.write_all(head.as_bytes()).unwrap();
    // ...and nothing more: the body stalls.
    let answer = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "expected 408 for a stalled body, got {answer:?}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert_eq!(good_request(&s, 2), 204);
}

#[test]
fn idle_and_slow_connections_cannot_starve_good_clients() {
    let s = TestServer::start_with_config(Some(&config(LIMITS)));
    // Attackers keep every one of the 8 connection slots busy, over and over: each opens a
    // connection, sends half a request head and waits to be cut off, then does it again.
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.base.trim_start_matches("http://").to_owned();
    let attackers: Vec<_> = (0..16)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut cut_off = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut c) = TcpStream::connect(&addr) else { continue };
                    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHo");
                    let _ = read_until_closed(&mut c);
                    cut_off += 1;
                }
                cut_off
            })
        })
        .collect();
    // Good clients get through: they wait in the accept backlog for a slot that the timeouts
    // free, and are then served normally.
    for n in 0..10 {
        assert_eq!(good_request(&s, 100 + n), 204, "good request {n} failed while under attack");
    }
    stop.store(true, Ordering::Relaxed);
    let cut_off: usize = attackers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(cut_off >= 16, "slow connections were not cut off ({cut_off})");
    for n in 0..10 {
        assert_eq!(good_request(&s, 200 + n), 204);
    }
}
