//! `--status`: a compact, refreshing view of every SERIAL-MUX link (state,
//! quality, a goodput sparkline) and its channels, drawn on stderr with ratatui
//! over crossterm (portable to Windows consoles).
//!
//! The view takes the terminal's alternate screen and gives it back when it is
//! dropped (normal exit, Ctrl-C, an error) or on a panic. It does not switch the
//! terminal to raw mode, so Ctrl-C stays a signal and stops sfs the usual way.
//! While it is up, log lines are kept (see [`LogWriter`]) and shown in its
//! bottom pane instead of scribbling over it; they are printed after it ends.
#![allow(clippy::disallowed_methods)] // a driver of the terminal: it reads the clock for uptime and sampling

use crate::stats::LinkSnapshot;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};
use ratatui::Terminal;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the view is redrawn (and a resized terminal noticed).
pub const REFRESH: Duration = Duration::from_millis(500);
/// Goodput samples kept for the sparkline (one per second).
const HISTORY: usize = 120;
/// Log lines kept while the view is up.
const LOG_KEEP: usize = 500;

/// Log lines held back while the view owns the terminal; `None` when it does not.
static CAPTURED: Mutex<Option<VecDeque<String>>> = Mutex::new(None);

/// Whether the view owns the terminal now (so nothing else should write to it).
pub fn view_is_up() -> bool {
    CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The log writer `sfs` installs: stderr, or the view's log pane while it is up.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
        match captured.as_mut() {
            Some(lines) => {
                for l in String::from_utf8_lossy(buf).lines() {
                    if lines.len() == LOG_KEEP {
                        lines.pop_front();
                    }
                    lines.push_back(l.to_string());
                }
                Ok(buf.len())
            }
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The live view; the terminal is restored when it is dropped.
pub struct StatusView {
    terminal: Terminal<CrosstermBackend<io::Stderr>>,
    started: Instant,
    history: HashMap<String, (Instant, VecDeque<u64>)>,
}

impl StatusView {
    /// Takes over the terminal, or returns `None` (after a one-line notice)
    /// when stderr is not a terminal: piped output is never garbled.
    pub fn start() -> Option<Self> {
        if !io::stderr().is_terminal() {
            eprintln!("sfs: --status needs a terminal on stderr; running without the view");
            return None;
        }
        match Self::enter() {
            Ok(v) => Some(v),
            Err(e) => {
                restore();
                eprintln!(
                    "sfs: --status: cannot use the terminal ({}); running without the view",
                    crate::error::describe_io(&e)
                );
                None
            }
        }
    }

    fn enter() -> io::Result<Self> {
        crossterm::execute!(
            io::stderr(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )?;
        *CAPTURED.lock().unwrap_or_else(|e| e.into_inner()) = Some(VecDeque::new());
        // A panic must not leave the terminal on the alternate screen.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let mut terminal = Terminal::new(CrosstermBackend::new(io::stderr()))?;
        terminal.clear()?;
        Ok(StatusView {
            terminal,
            started: Instant::now(),
            history: HashMap::new(),
        })
    }

    /// Redraws the view for `links`; the terminal's current size is used, so a
    /// resize shows at the next refresh.
    pub fn draw(&mut self, links: &[LinkSnapshot]) {
        let now = Instant::now();
        for l in links {
            let (last, h) = self
                .history
                .entry(l.device.clone())
                .or_insert_with(|| (now, VecDeque::new()));
            if h.is_empty() || now.duration_since(*last) >= Duration::from_secs(1) {
                *last = now;
                if h.len() == HISTORY {
                    h.pop_front();
                }
                h.push_back(l.goodput_tx_bytes_per_s.max(l.goodput_rx_bytes_per_s) as u64);
            }
        }
        let logs: Vec<String> = CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        let uptime = now.duration_since(self.started);
        let history = &self.history;
        let _ = self.terminal.draw(|f| {
            let area = f.area();
            let mut constraints = vec![Constraint::Length(1)];
            constraints.extend(links.iter().map(|_| Constraint::Length(7)));
            constraints.push(Constraint::Min(4));
            constraints.push(Constraint::Length(5));
            let rows = Layout::vertical(constraints).split(area);
            f.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled("sfs", Style::new().add_modifier(Modifier::BOLD)),
                    Span::raw(format!(
                        " {} · up {} · Ctrl-C stops",
                        env!("CARGO_PKG_VERSION"),
                        human_secs(uptime.as_secs_f64())
                    )),
                ])),
                rows[0],
            );
            for (i, l) in links.iter().enumerate() {
                let spark: Vec<u64> = history
                    .get(&l.device)
                    .map(|(_, h)| h.iter().copied().collect())
                    .unwrap_or_default();
                draw_link(f, rows[1 + i], l, &spark);
            }
            let chan_area = rows[1 + links.len()];
            let log_area = rows[2 + links.len()];
            draw_channels(f, chan_area, links);
            let shown = log_area.height.saturating_sub(2) as usize;
            let tail: Vec<Line> = logs
                .iter()
                .skip(logs.len().saturating_sub(shown))
                .map(|s| Line::raw(s.clone()))
                .collect();
            f.render_widget(
                Paragraph::new(tail).block(Block::default().borders(Borders::TOP).title(" log ")),
                log_area,
            );
        });
    }
}

impl Drop for StatusView {
    fn drop(&mut self) {
        restore();
        let _ = self.terminal.show_cursor();
    }
}

/// Leaves the alternate screen and prints the log lines kept meanwhile.
fn restore() {
    let _ = crossterm::execute!(
        io::stderr(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let kept = CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut err = io::stderr();
    for l in kept.into_iter().flatten() {
        let _ = writeln!(err, "{l}");
    }
}

/// The forward error correction line of a link's box: what the code costs
/// (parity in use) and what it saves (frames repaired).
fn fec_line(l: &LinkSnapshot) -> String {
    let parity = |p: usize| {
        if p == 0 {
            "none".to_string()
        } else {
            format!("{p}/255")
        }
    };
    format!(
        "FEC parity out {} · asked {} · {} bytes corrected in {} frames · {} beyond repair",
        parity(l.fec_parity),
        parity(l.fec_parity_wanted),
        l.fec_bytes_corrected,
        l.fec_frames_repaired,
        l.fec_frames_failed,
    )
}

fn draw_link(f: &mut ratatui::Frame, area: ratatui::layout::Rect, l: &LinkSnapshot, spark: &[u64]) {
    let state_style = match l.state {
        crate::stats::LinkState::Up => Style::new().fg(Color::Green),
        crate::stats::LinkState::Bootstrapping => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Red),
    };
    let title = Line::from(vec![
        Span::raw(format!(" SERIAL-MUX:{} ", l.device)),
        Span::styled(
            format!("link {}", l.state.as_str()),
            state_style.add_modifier(Modifier::BOLD),
        ),
        Span::raw(match &l.peer_epoch {
            Some(p) if l.link_uptime_s > 0.0 => {
                format!(" {} (peer {p}) ", human_secs(l.link_uptime_s))
            }
            _ => " ".to_string(),
        }),
    ]);
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [text, graph] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(inner);
    if let Some(b) = &l.bootstrap {
        return draw_bootstrap(f, text, graph, l.baud, b);
    }
    // A full-duplex line gives each direction the whole rate; a half-duplex
    // one (duplex=half) shares it.
    let load = if l.turns.is_some() {
        l.goodput_tx_bytes_per_s + l.goodput_rx_bytes_per_s
    } else {
        l.goodput_tx_bytes_per_s.max(l.goodput_rx_bytes_per_s)
    } / l.line_bytes_per_s as f64;
    let lines = vec![
        Line::raw(format!(
            "{} baud · goodput out {}/s in {}/s ({:.0}% of line) · srtt {} · frame {} B",
            l.baud,
            human_bytes(l.goodput_tx_bytes_per_s as u64),
            human_bytes(l.goodput_rx_bytes_per_s as u64),
            load * 100.0,
            l.srtt_ms
                .map(|m| format!("{m:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            l.frame_payload,
        )),
        Line::raw(
            format!(
            "frames {} out / {} in · {} retransmitted · {} CRC failures · queue {} B · {} channels",
            l.frames_sent,
            l.frames_received,
            l.retransmissions,
            l.crc_failures,
            l.queue_bytes,
            l.channels.len(),
        ) + &l.turns.map_or(String::new(), |t| {
                format!(
                    " · half duplex: turns {} passed / {} taken / {} claimed",
                    t.passed, t.taken, t.claimed
                )
            }),
        ),
        Line::raw(fec_line(l)),
    ];
    f.render_widget(Paragraph::new(lines), text);
    // Newest on the right; the scale is the line's capacity, so a full line
    // fills the graph.
    let width = graph.width as usize;
    let data = &spark[spark.len().saturating_sub(width)..];
    f.render_widget(
        Sparkline::default()
            .data(data)
            .max(l.line_bytes_per_s as u64)
            .style(Style::new().fg(Color::Cyan)),
        graph,
    );
}

/// A link whose far sfs `bootstrap=` is putting in place: the step, and the
/// upload as a gauge.
fn draw_bootstrap(
    f: &mut ratatui::Frame,
    text: ratatui::layout::Rect,
    graph: ratatui::layout::Rect,
    baud: u32,
    b: &crate::stats::BootstrapSnapshot,
) {
    let mut lines = vec![Line::raw(format!(
        "{baud} baud · putting sfs on the far side{} · {} · {}",
        b.far_arch
            .as_deref()
            .map_or(String::new(), |a| format!(" ({a})")),
        b.step.replace('_', " "),
        human_secs(b.elapsed_s),
    ))];
    if b.upload_bytes > 0 {
        // No rate until the first chunk is verified.
        let rate = match b.upload_eta_s {
            Some(left) => format!(
                " · {}/s · {} left",
                human_bytes(b.upload_bytes_per_s as u64),
                human_secs(left)
            ),
            None => String::new(),
        };
        lines.push(Line::raw(format!(
            "uploaded {} of {}{rate}",
            human_bytes(b.uploaded_bytes),
            human_bytes(b.upload_bytes),
        )));
        let ratio = (b.uploaded_bytes as f64 / b.upload_bytes as f64).clamp(0.0, 1.0);
        f.render_widget(
            ratatui::widgets::Gauge::default()
                .ratio(ratio)
                .label(format!("{:.0}%", ratio * 100.0))
                .gauge_style(Style::new().fg(Color::Yellow)),
            graph,
        );
    }
    f.render_widget(Paragraph::new(lines), text);
}

fn draw_channels(f: &mut ratatui::Frame, area: ratatui::layout::Rect, links: &[LinkSnapshot]) {
    let header = Row::new(vec![
        "ch", "dir", "service", "endpoint", "out", "in", "state", "age",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = links
        .iter()
        .flat_map(|l| l.channels.iter())
        .map(|c| {
            Row::new(vec![
                c.name.clone(),
                match c.direction {
                    crate::stats::Direction::Outbound => "out".to_string(),
                    crate::stats::Direction::Inbound => "in".to_string(),
                },
                if c.service.is_empty() {
                    "(default)".to_string()
                } else {
                    c.service.clone()
                },
                c.endpoint.clone().unwrap_or_else(|| "-".into()),
                human_bytes(c.bytes_out),
                human_bytes(c.bytes_in),
                c.state.as_str().to_string(),
                human_secs(c.age_s),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(10),
            Constraint::Min(16),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(format!(" channels ({count}) ")),
    );
    f.render_widget(table, area);
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// `75.0` → `1m15s`.
pub fn human_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_345), "12.3 kB");
        assert_eq!(human_bytes(3_400_000_000), "3400.0 MB");
        assert_eq!(human_secs(75.2), "1m15s");
        assert_eq!(human_secs(7300.0), "2h01m");
    }
}
