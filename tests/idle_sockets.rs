//! Idle sockets cannot hold connection slots (issue 14, item 1), against the real binary: a
//! socket that never sends a byte is closed at the first-request deadline, a keep-alive
//! connection and an HTTP/2 connection that keeps answering PINGs are closed once idle, and one
//! address cannot open more than its share. Timeouts are small and configured; a generous
//! socket timeout only keeps a server that never closes from hanging the test.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

fn connect(s: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(addr(s)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// True when the server closed the connection, false when the read timed out with it open.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A client from another loopback address, so the per-address cap of 127.0.0.1 does not apply.
fn other_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[test]
fn silent_sockets_are_closed_at_the_first_request_deadline_and_free_their_slots() {
    let s = TestServer::start_with_config(Some("[limits]\nmax_connections = 4\nheader_timeout_ms = 400\n"));
    let mut silent: Vec<TcpStream> = (0..4).map(|_| connect(&s)).collect();
    for (i, stream) in silent.iter_mut().enumerate() {
        assert!(closed_by_server(stream), "silent socket {i} was never closed");
    }
    // Every slot was held by a silent socket; now /healthz answers again.
    let r = other_client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.metric("hushtale_connections_closed_total{reason=\"late\"}") >= 4.0);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let s = TestServer::start_with_config(Some("[limits]\nidle_timeout_ms = 400\n"));
    let mut stream = connect(&s);
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "the request was served");
    assert!(closed_by_server(&mut stream), "an idle keep-alive connection stayed open");
    assert!(s.metric("hushtale_connections_closed_total{reason=\"idle\"}") >= 1.0);
}

#[test]
fn an_idle_http2_connection_is_closed_even_while_it_answers_pings() {
    let s = TestServer::start_with_config(Some("[limits]\nidle_timeout_ms = 600\n"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use http_body_util::{BodyExt, Empty};
        use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
        let tcp = tokio::net::TcpStream::connect(addr(&s)).await.unwrap();
        // The client PINGs every 100 ms and answers the server's PINGs, so the connection is
        // never silent: only request activity may count.
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let req = http::Request::get(format!("{}/healthz", s.base)).body(Empty::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), driver).await;
        assert!(ended.is_ok(), "an idle HTTP/2 connection answering PINGs stayed open");
    });
}

#[test]
fn one_address_cannot_take_more_than_its_share_of_connections() {
    let s = TestServer::start_with_config(Some("[limits]\nmax_connections_per_ip = 3\nheader_timeout_ms = 30000\n"));
    let _held: Vec<TcpStream> = (0..3).map(|_| connect(&s)).collect();
    let mut extra = connect(&s);
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(closed_by_server(&mut extra), "a fourth connection from one address was kept open");
    // Other addresses are served meanwhile.
    let r = other_client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    let metrics = other_client().get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("hushtale_connections_closed_total{reason=\"per_address\"}"), "{metrics}");
}
