//! The benchmark report: rows of measurements with their baselines, as a
//! Markdown table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::Summary;
use crate::BenchConfig;

/// One latency row: execd and its baselines.
#[derive(Debug, Clone, Default)]
pub struct LatencyRow {
    pub name: String,
    pub execd: Option<Summary>,
    pub local: Option<Summary>,
    pub ssh: Option<Summary>,
}

/// One throughput row, in bytes per second.
#[derive(Debug, Clone, Default)]
pub struct ThroughputRow {
    pub name: String,
    pub execd: Option<f64>,
    pub local: Option<f64>,
    pub ssh: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub command_line: String,
    pub machine: String,
    pub latency: Vec<LatencyRow>,
    pub throughput: Vec<ThroughputRow>,
    /// Free-form facts (RSS figures, fan-out totals).
    pub notes: Vec<(String, String)>,
}

/// The request round-trip row (local baseline: a TCP ping-pong).
pub const ROUND_TRIP: &str = "request round trip (local: TCP ping-pong)";

/// The spawn row (local baseline: fork+exec+wait, taken in turn).
pub const SPAWN_ROW: &str = "spawn /bin/true → closed";

/// The resume row (local baseline: a fresh connection and the same echo).
pub const RESUME_ROW: &str =
    "cut → resumed → first replayed byte (local: fresh connect + start + echo)";

/// The name of the throughput row for a stream of `bytes` over JSON/base64.
pub fn stream_row(bytes: u64) -> String {
    format!(
        "stream {} MiB, `head -c` from /dev/zero, JSON/base64",
        bytes >> 20
    )
}

/// The same stream with binary output frames (execd's extension).
pub fn binary_stream_row(bytes: u64) -> String {
    format!(
        "stream {} MiB, `head -c` from /dev/zero, binary frames",
        bytes >> 20
    )
}

/// Both stream rows (baselines go on each).
pub fn stream_rows(bytes: u64) -> [String; 2] {
    [stream_row(bytes), binary_stream_row(bytes)]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Option<Summary>, b: Option<Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.median.is_zero() => {
            format!("{:.2}×", a.median.as_secs_f64() / b.median.as_secs_f64())
        }
        _ => "–".into(),
    }
}

fn median(s: Option<Summary>) -> String {
    s.map_or("–".into(), |s| ms(s.median))
}

fn mbps(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.0}", v / 1e6))
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

impl Report {
    pub fn new(config: &BenchConfig) -> Self {
        Report {
            command_line: config.command_line.clone(),
            machine: machine(),
            ..Report::default()
        }
    }

    pub fn latency(&mut self, name: &str) -> &mut LatencyRow {
        let index = match self.latency.iter().position(|r| r.name == name) {
            Some(index) => index,
            None => {
                self.latency.push(LatencyRow {
                    name: name.into(),
                    ..LatencyRow::default()
                });
                self.latency.len() - 1
            }
        };
        &mut self.latency[index]
    }

    pub fn throughput(&mut self, name: &str) -> &mut ThroughputRow {
        let index = match self.throughput.iter().position(|r| r.name == name) {
            Some(index) => index,
            None => {
                self.throughput.push(ThroughputRow {
                    name: name.into(),
                    ..ThroughputRow::default()
                });
                self.throughput.len() - 1
            }
        };
        &mut self.throughput[index]
    }

    pub fn note(&mut self, key: &str, value: String) {
        self.notes.push((key.into(), value));
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Machine: {}  ", self.machine);
        let _ = writeln!(out, "Command: `{}`\n", self.command_line);
        let _ = writeln!(
            out,
            "| latency (ms) | execd median | p90 | p99 | local median | execd/local | ssh median | execd/ssh |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in &self.latency {
            let (p90, p99) = row
                .execd
                .map_or(("–".into(), "–".into()), |s| (ms(s.p90), ms(s.p99)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.name,
                median(row.execd),
                p90,
                p99,
                median(row.local),
                ratio(row.execd, row.local),
                median(row.ssh),
                ratio(row.execd, row.ssh),
            );
        }
        let _ = writeln!(
            out,
            "\n| throughput (MB/s) | execd | local | execd/local | ssh | execd/ssh |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for row in &self.throughput {
            let r = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                row.name,
                mbps(row.execd),
                mbps(row.local),
                r(row.execd, row.local),
                mbps(row.ssh),
                r(row.execd, row.ssh),
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for (key, value) in &self.notes {
                let _ = writeln!(out, "- {key}: {value}");
            }
        }
        out
    }
}
