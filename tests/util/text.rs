//! Realistic text for compression tests and benchmarks: server logs, HTML,
//! JSON and CSV, deterministic for a seed.

use sfs::line::rng::splitmix64;
use sfs::testbed::{upload_from, Transfer};
use std::io;
use std::net::SocketAddr;

/// Deterministic realistic text — server logs, HTML, JSON and CSV, in runs
/// of lines of one kind — for compression benchmarks. Like `sfs::testbed::PatternGen`,
/// the stream does not depend on how it is cut into buffers.
pub struct TextGen {
    state: u64,
    pending: Vec<u8>,
    at: usize,
    kind: usize,
    left_in_run: u32,
    line: u64,
}

impl TextGen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        TextGen {
            state: seed,
            pending: Vec::new(),
            at: 0,
            kind: 0,
            left_in_run: 0,
            line: 0,
        }
    }

    fn next(&mut self) -> u64 {
        splitmix64(&mut self.state)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn more(&mut self) {
        const PATHS: &[&str] = &[
            "/",
            "/index.html",
            "/api/v1/items",
            "/api/v1/items/42",
            "/static/app.js",
            "/static/style.css",
            "/login",
            "/search?q=serial+line",
            "/favicon.ico",
        ];
        const AGENTS: &[&str] = &[
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "curl/8.5.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0",
            "Prometheus/2.51.0",
        ];
        const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
        const WORDS: &[&str] = &[
            "serial",
            "line",
            "packet",
            "frame",
            "window",
            "credit",
            "channel",
            "sensor",
            "temperature",
            "pressure",
            "valve",
            "pump",
            "status",
            "ok",
            "retry",
            "timeout",
        ];
        if self.left_in_run == 0 {
            self.kind = (self.next() % 4) as usize;
            self.left_in_run = 20 + (self.next() % 200) as u32;
        }
        self.left_in_run -= 1;
        self.line += 1;
        let r = self.next();
        let (h, m, s, ms) = (
            (self.line / 3_600_000) % 24,
            (self.line / 60_000) % 60,
            (self.line / 1000) % 60,
            r % 1000,
        );
        let line = match self.kind {
            0 => {
                let path = self.pick(PATHS);
                let agent = self.pick(AGENTS);
                format!(
                    "10.0.{}.{} - - [01/Dec/2026:{h:02}:{m:02}:{s:02} +0000] \"GET {path} HTTP/1.1\" {} {} \"-\" \"{agent}\"\n",
                    (r >> 8) % 256,
                    (r >> 16) % 256,
                    [200, 200, 200, 304, 404, 500][((r >> 24) % 6) as usize],
                    (r >> 32) % 50_000,
                )
            }
            1 => {
                let level = self.pick(LEVELS);
                let (w1, w2) = (self.pick(WORDS), self.pick(WORDS));
                format!(
                    "2026-12-01T{h:02}:{m:02}:{s:02}.{ms:03}Z {level:5} sfs::worker[{}]: {w1} {w2} id={} took {}ms\n",
                    (r >> 10) % 8,
                    (r >> 20) % 100_000,
                    (r >> 40) % 900,
                )
            }
            2 => {
                let (w1, w2) = (self.pick(WORDS), self.pick(WORDS));
                format!(
                    "{{\"id\":{},\"name\":\"{w1}-{w2}\",\"value\":{}.{},\"unit\":\"{}\",\"ok\":{},\"tags\":[\"{w1}\",\"site-{}\"]}}\n",
                    self.line,
                    (r >> 8) % 1000,
                    (r >> 20) % 100,
                    ["C", "kPa", "rpm", "V"][((r >> 30) % 4) as usize],
                    (r >> 33) % 2 == 0,
                    (r >> 36) % 16,
                )
            }
            _ => {
                let w1 = self.pick(WORDS);
                if self.line % 3 == 0 {
                    format!(
                        "<tr class=\"row\"><td>{}</td><td><a href=\"/items/{}\">{w1}</a></td><td class=\"num\">{}.{:02}</td></tr>\n",
                        self.line,
                        (r >> 8) % 10_000,
                        (r >> 24) % 1000,
                        (r >> 40) % 100,
                    )
                } else {
                    format!(
                        "{},{w1},{}.{:02},{},2026-12-01 {h:02}:{m:02}:{s:02}\n",
                        self.line,
                        (r >> 8) % 1000,
                        (r >> 24) % 100,
                        (r >> 32) % 2 == 0,
                    )
                }
            }
        };
        self.pending.extend_from_slice(line.as_bytes());
    }

    /// Fills `buf` with the next bytes of the text.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            if self.at == self.pending.len() {
                self.pending.clear();
                self.at = 0;
                while self.pending.len() < 4096 {
                    self.more();
                }
            }
            let k = (self.pending.len() - self.at).min(buf.len() - done);
            buf[done..done + k].copy_from_slice(&self.pending[self.at..self.at + k]);
            self.at += k;
            done += k;
        }
    }
}

/// Sends `len` bytes of realistic text ([`TextGen`]) through the bed to the
/// sink and checks the verdict.
pub async fn upload_text(entry: SocketAddr, len: u64, seed: u64) -> io::Result<Transfer> {
    let mut g = TextGen::new(seed);
    upload_from(entry, len, move |b| g.fill(b)).await
}
