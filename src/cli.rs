//! The operator CLI: `hushtale stats|pages|heatmap` ask a running server's API and print an
//! aligned table (or the server's JSON with `--json`). No store access: only HTTP.
//!
//! Exit codes: 0 success; 1 the server refused the request (401, 404, 400, 5xx); 2 usage
//! (bad flags, no token); 3 the server could not be reached.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::privacy::control::escape_controls;

/// Where the server is and how to authenticate, plus what every report takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Site id.
    #[arg(long)]
    pub site: String,
    /// First UTC day, YYYY-MM-DD [default: 29 days before --to].
    #[arg(long)]
    pub from: Option<String>,
    /// Last UTC day, YYYY-MM-DD [default: today].
    #[arg(long)]
    pub to: Option<String>,
    /// Base URL of the running server.
    #[arg(long, env = "HUSHTALE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token [default: the data folder's admin-token file, if readable].
    #[arg(long, env = "HUSHTALE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct PagesArgs {
    #[command(flatten)]
    pub common: Common,
    /// Rows per page (1-1000) [default: 50].
    #[arg(long)]
    pub limit: Option<u32>,
    /// Rows to skip (the `next` offset printed under the table).
    #[arg(long)]
    pub offset: Option<u32>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HeatKindArg {
    Click,
    Move,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WidthArg {
    Mobile,
    Tablet,
    Desktop,
    All,
}

#[derive(Args, Debug, Clone)]
pub struct HeatmapArgs {
    #[command(flatten)]
    pub common: Common,
    /// Page path (`/pricing`) or URL.
    #[arg(long)]
    pub path: String,
    #[arg(long, value_enum, default_value = "click")]
    pub kind: HeatKindArg,
    /// Viewport-width class.
    #[arg(long, value_enum, default_value = "all")]
    pub width: WidthArg,
    /// Hottest cells (and elements) shown in the table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

/// One operator command.
#[derive(Debug, Clone)]
pub enum Report {
    Stats(StatsArgs),
    Pages(PagesArgs),
    Heatmap(HeatmapArgs),
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    /// The server answered with an error status.
    Refused {
        status: u16,
        message: String,
    },
    Unreachable(String),
    /// The answer was not what the API documents.
    BadAnswer(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { .. } | CliError::BadAnswer(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Unreachable(m) | CliError::BadAnswer(m) => f.write_str(m),
            CliError::Refused { status, message } => {
                write!(f, "server answered {status}: {message}")?;
                match status {
                    401 => f.write_str(" (check --token or HUSHTALE_ADMIN_TOKEN)"),
                    404 => f.write_str(" (check --site, and that --url points at hushtale)"),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Runs `report`, printing to stdout (the answer) and stderr (errors).
pub fn run(report: Report) -> ExitCode {
    match render(&report) {
        // Stored text predating the control-character rule must not drive the terminal.
        Ok(out) => {
            print!("{}", escape_controls(&out));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hushtale: {}", escape_controls(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Calls the API and returns what `run` prints.
pub fn render(report: &Report) -> Result<String, CliError> {
    let common = match report {
        Report::Stats(a) => &a.common,
        Report::Pages(a) => &a.common,
        Report::Heatmap(a) => &a.common,
    };
    let (endpoint, mut query) = match report {
        Report::Stats(_) => ("stats", vec![]),
        Report::Pages(a) => {
            let mut q = vec![];
            if let Some(l) = a.limit {
                q.push(("limit", l.to_string()));
            }
            if let Some(o) = a.offset {
                q.push(("offset", o.to_string()));
            }
            ("pages", q)
        }
        Report::Heatmap(a) => (
            "heatmap",
            vec![
                ("path", a.path.clone()),
                ("kind", format!("{:?}", a.kind).to_lowercase()),
                ("width", format!("{:?}", a.width).to_lowercase()),
            ],
        ),
    };
    if let Some(f) = &common.from {
        query.push(("from", f.clone()));
    }
    if let Some(t) = &common.to {
        query.push(("to", t.clone()));
    }
    let (raw, value) = get(common, endpoint, &query)?;
    if common.json {
        return Ok(format!("{}\n", raw.trim_end()));
    }
    let shape = |e: &str| CliError::BadAnswer(format!("unexpected answer from {endpoint}: {e}"));
    match report {
        Report::Stats(_) => stats_table(&value).ok_or_else(|| shape("no days")),
        Report::Pages(_) => pages_table(&value).ok_or_else(|| shape("no pages")),
        Report::Heatmap(a) => heatmap_table(&value, a.top).ok_or_else(|| shape("no cells")),
    }
}

fn token(common: &Common) -> Result<String, CliError> {
    if let Some(t) = common.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_owned());
    }
    let data = std::env::var_os("HUSHTALE_DATA").map_or_else(|| PathBuf::from("hushtale-data"), PathBuf::from);
    let file = data.join(crate::secrets::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(CliError::Usage(format!(
            "no operator token: pass --token, set HUSHTALE_ADMIN_TOKEN, or run where {} is readable",
            file.display()
        ))),
    }
}

/// `GET {url}/api/sites/{site}/{endpoint}?query`: the body as text and as JSON.
fn get(common: &Common, endpoint: &str, query: &[(&str, String)]) -> Result<(String, Value), CliError> {
    let token = token(common)?;
    let mut url = url::Url::parse(&common.url)
        .map_err(|e| CliError::Usage(format!("--url {:?} is not a URL: {e}", common.url)))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(CliError::Usage(format!("--url {:?} must be http(s)://HOST[:PORT]", common.url)));
    }
    url.path_segments_mut().map_err(|_| CliError::Usage("--url cannot take a path".into()))?.pop_if_empty().extend([
        "api",
        "sites",
        common.site.as_str(),
        endpoint,
    ]);
    url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let answer = agent.get(url.as_str()).set("Authorization", &format!("Bearer {token}")).call();
    let resp = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            let body = r.into_string().unwrap_or_default();
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(CliError::Refused { status, message });
        }
        Err(ureq::Error::Transport(t)) => {
            let why = match t.kind() {
                ureq::ErrorKind::ConnectionFailed => "connection refused — is `hushtale serve` running there?".into(),
                ureq::ErrorKind::Dns => "unknown host".into(),
                _ => t.to_string(),
            };
            return Err(CliError::Unreachable(format!("cannot reach {}: {why}", common.url)));
        }
    };
    let raw = resp.into_string().map_err(|e| CliError::Unreachable(format!("reading the answer: {e}")))?;
    let value = serde_json::from_str(&raw).map_err(|e| CliError::BadAnswer(format!("the answer is not JSON ({e})")))?;
    Ok((raw, value))
}

/// Columns of text, the first left-aligned and the rest right-aligned (numbers).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Self { head: head.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let widths: Vec<usize> = (0..self.head.len())
            .map(|i| {
                std::iter::once(&self.head)
                    .chain(&self.rows)
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                if i == 0 {
                    let _ = write!(s, "{c:<w$}");
                } else {
                    let _ = write!(s, "  {c:>w$}");
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.head, out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, out);
        for r in &self.rows {
            line(r, out);
        }
    }
}

/// An integer, a number with one decimal, or `-` for null/absent.
fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::Number(n) => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => "-".into(),
    }
}

fn stats_table(v: &Value) -> Option<String> {
    let days = v.get("days")?.as_array()?;
    let mut out = String::new();
    let first = days.first().map_or(String::new(), |d| cell(&d["day"]));
    let last = days.last().map_or(String::new(), |d| cell(&d["day"]));
    let _ = writeln!(out, "site {}, {first} to {last} (UTC days, load times in ms)\n", cell(&v["site"]));
    let cols = ["pageviews", "sessions", "visitors", "avg_load_ms", "p50_load_ms", "p95_load_ms"];
    let mut t = Table::new(&["day", "pageviews", "sessions", "visitors", "avg load", "p50 load", "p95 load"]);
    for d in days {
        t.row(std::iter::once(cell(&d["day"])).chain(cols.iter().map(|c| cell(&d[*c]))).collect());
    }
    let totals = v.get("totals")?;
    t.row(std::iter::once("total".to_owned()).chain(cols.iter().map(|c| cell(&totals[*c]))).collect());
    t.render(&mut out);
    Some(out)
}

fn pages_table(v: &Value) -> Option<String> {
    let pages = v.get("pages")?.as_array()?;
    let mut out = String::new();
    let cols = [
        "pageviews",
        "avg_load_ms",
        "p50_load_ms",
        "p95_load_ms",
        "avg_scroll_pct",
        "clicks",
        "rage_clicks",
        "dead_clicks",
    ];
    let mut t =
        Table::new(&["path", "pageviews", "avg load", "p50 load", "p95 load", "scroll %", "clicks", "rage", "dead"]);
    for p in pages {
        t.row(std::iter::once(cell(&p["path"])).chain(cols.iter().map(|c| cell(&p[*c]))).collect());
    }
    t.render(&mut out);
    let _ = write!(out, "\n{} of {} paths (load times in ms)", pages.len(), cell(&v["total"]));
    if let Some(next) = v.get("next").and_then(Value::as_u64) {
        let _ = write!(out, "; more with --offset {next}");
    }
    out.push('\n');
    Some(out)
}

fn heatmap_table(v: &Value, top: usize) -> Option<String> {
    let cells = v.get("cells")?.as_array()?;
    let g = v.get("geometry")?;
    let columns = g.get("columns")?.as_f64()?.max(1.0);
    let row_px = g.get("row_px")?.as_f64()?;
    let total: u64 = cells.iter().filter_map(|c| c["n"].as_u64()).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} heatmap of {} ({} widths): {} in {} cells; x is a column of {:.0} across the document width, y a row of {} px\n",
        cell(&v["kind"]),
        cell(&v["path"]),
        cell(&v["width"]),
        total,
        cells.len(),
        columns,
        row_px
    );
    let mut t = Table::new(&["x (% of width)", "y (px from top)", "n", "share"]);
    for c in cells.iter().take(top) {
        let (x, y, n) = (c["x"].as_f64()?, c["y"].as_f64()?, c["n"].as_u64()?);
        let share = if total > 0 { n as f64 * 100.0 / total as f64 } else { 0.0 };
        t.row(vec![
            format!("{:.0}-{:.0}", x * 100.0 / columns, (x + 1.0) * 100.0 / columns),
            format!("{:.0}-{:.0}", y * row_px, (y + 1.0) * row_px),
            n.to_string(),
            format!("{share:.1}%"),
        ]);
    }
    t.render(&mut out);
    if cells.len() > top {
        let _ = writeln!(out, "({} more cells; --top N shows more, --json all)", cells.len() - top);
    }
    if let Some(elements) = v.get("elements").and_then(Value::as_array).filter(|e| !e.is_empty()) {
        out.push('\n');
        let mut t = Table::new(&["element", "clicks"]);
        for e in elements.iter().take(top) {
            t.row(vec![cell(&e["sel"]), cell(&e["n"])]);
        }
        t.render(&mut out);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_nulls_as_dashes() {
        let v = json!({"site":"demo","days":[
            {"day":"2026-01-01","pageviews":1234,"sessions":5,"visitors":3,"avg_load_ms":312.25,"p50_load_ms":300.0,"p95_load_ms":null}],
            "totals":{"pageviews":1234,"sessions":5,"visitors":3,"avg_load_ms":312.25,"p50_load_ms":300.0,"p95_load_ms":null}});
        let out = stats_table(&v).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[2].starts_with("day"), "{out}");
        assert!(lines[4].contains("1234") && lines[4].contains("312.2") && lines[4].ends_with('-'), "{out}");
        // Right-aligned: every data row ends at the header's width.
        assert_eq!(lines[2].len(), lines[3].len());
        assert!(lines[5].starts_with("total"));
    }

    #[test]
    fn heatmap_table_describes_cells_in_document_terms() {
        let v = json!({"path":"/a","kind":"click","width":"all","geometry":{"columns":50,"row_px":20.0,"element_grid":10},
            "cells":[{"x":37,"y":60,"n":3},{"x":0,"y":0,"n":1}],"elements":[{"sel":"#buy","n":3,"points":[[2,9,3]]}]});
        let out = heatmap_table(&v, 1).unwrap();
        assert!(out.contains("74-76") && out.contains("1200-1220") && out.contains("75.0%"), "{out}");
        assert!(out.contains("1 more cells") && out.contains("#buy"), "{out}");
    }
}
