//! The load run's reference points, as one small program of this crate (a `harness = false`
//! bench target, so it is built with the same release profile as `hushtale`):
//!
//! - `ceiling serve --listen ADDR` — the **ceiling**: a bare hyper 1 server on the same tokio
//!   multi-thread runtime and HTTP/1.1 settings as hushtale, that reads the whole request body and
//!   answers 204. Nothing a collector does can be faster than this on the same machine, so
//!   `collect ÷ ceiling` says what share of the HTTP stack's capacity is left after decoding,
//!   privacy and a durable write.
//! - `ceiling bodies --events N --count C --out FILE` — writes the request bodies of the load run:
//!   one realistic N-event batch as a JSON template (for `wrk` to fill in session and sequence
//!   numbers) and C distinct MessagePack+gzip bodies of the same batch (gzip cannot be patched
//!   in place, so each (sid, seq) is pre-encoded: every request is a real write, never a duplicate).
//!
//! `benches/load/run.sh` drives both; `cargo bench` alone only prints this note.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

#[path = "load/batch.rs"]
mod load_batch;
use load_batch::batch;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("serve") => serve(flag("--listen").unwrap_or_else(|| "127.0.0.1:0".into())),
        Some("bodies") => bodies(
            flag("--events").map_or(50, |n| n.parse().expect("--events N")),
            flag("--count").map_or(100_000, |n| n.parse().expect("--count N")),
            &flag("--out").expect("--out FILE"),
        ),
        _ => println!("ceiling: a bare hyper server and body generator for benches/load/run.sh (nothing to run here)"),
    }
}

fn serve(listen: String) {
    let addr: SocketAddr = listen.parse().expect("--listen IP:PORT");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        println!("ceiling listening on http://{}", listener.local_addr().expect("local addr"));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service_fn(answer)).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
}

/// Reads the body like a collector must, then answers 204 (GET: 200 and a small JSON body).
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let get = req.method() == http::Method::GET;
    let _ = req.into_body().collect().await;
    let (status, body) = if get {
        (StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
    } else {
        (StatusCode::NO_CONTENT, Bytes::new())
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    Ok(resp)
}

/// The sid placeholder in the JSON template: `wrk` replaces it with a fresh 32-hex session id.
const SID_MARK: &str = "5555555555555555555555555555555f";
/// The seq placeholder (a number in JSON, so the template stays valid JSON).
const SEQ_MARK: u32 = 4_242_424_242;

/// File layout read by `benches/load/*.lua`: a header line `json <len>` and the JSON template,
/// then per body a line `<len>` and the body bytes.
fn bodies(events: usize, count: usize, out: &str) {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let run = t as u64 & 0xffff_ffff;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("create --out"));
    let template = serde_json::to_vec(&batch(events, SID_MARK, SEQ_MARK, t)).expect("json");
    writeln!(file, "json {}", template.len()).unwrap();
    file.write_all(&template).unwrap();
    file.write_all(b"\n").unwrap();
    let mut raw_total = 0usize;
    let mut gz_total = 0usize;
    for n in 0..count {
        // Ten batches per session, as the JSON script does; the `ff` prefix keeps these
        // sessions apart from the JSON run's.
        let sid = format!("ff{run:08x}{:022x}", n / 10);
        let mp = rmp_serde::to_vec_named(&batch(events, &sid, (n % 10) as u32, t)).expect("msgpack");
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(mp.len() / 3), flate2::Compression::default());
        gz.write_all(&mp).unwrap();
        let gz = gz.finish().unwrap();
        raw_total += mp.len();
        gz_total += gz.len();
        writeln!(file, "{}", gz.len()).unwrap();
        file.write_all(&gz).unwrap();
    }
    file.flush().unwrap();
    eprintln!(
        "bodies: {events}-event batch: JSON {} B; MessagePack {} B, gzip {} B (mean of {count})",
        template.len(),
        raw_total / count.max(1),
        gz_total / count.max(1)
    );
}
