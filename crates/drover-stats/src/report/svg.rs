//! Chart drawing: inline SVG with a fixed `viewBox` that scales to its container, so a report
//! needs no script, no font and no network to render. Hover text uses SVG `<title>` elements,
//! which browsers show as tooltips without JavaScript.
//!
//! Two kinds of x axis: time since the start (linear, seconds) and latency (log, milliseconds).

use std::fmt::Write as _;

use super::page::escape;

/// Drawing size in user units; the browser scales it to the card's width.
pub(crate) const W: f64 = 640.0;
/// Height in user units.
pub(crate) const H: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// Colours for series (Tableau 10: distinct, readable on white, colour-blind friendlier than
/// the usual rainbow).
pub(crate) const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
    "#9c755f", "#bab0ac",
];
/// The colour of totals.
pub(crate) const TOTAL: &str = "#222222";

/// How the x axis maps values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum XAxis {
    /// Seconds since the start, `0..=max`.
    Time {
        /// Right edge, seconds.
        max: f64,
    },
    /// Milliseconds on a log scale, `10^lo..=10^hi`.
    LogMs {
        /// Left edge exponent.
        lo: f64,
        /// Right edge exponent.
        hi: f64,
    },
}

impl XAxis {
    fn unit(self, v: f64) -> f64 {
        match self {
            XAxis::Time { max } => v / max.max(1e-9),
            XAxis::LogMs { lo, hi } => (v.max(1e-9).log10() - lo) / (hi - lo).max(1e-9),
        }
    }
}

/// A line.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Legend name.
    pub name: String,
    /// Stroke colour.
    pub color: String,
    /// (x, y); `None` is a gap.
    pub points: Vec<(f64, Option<f64>)>,
    /// Dashed (limits).
    pub dashed: bool,
    /// Thicker (totals).
    pub bold: bool,
    /// Join across gaps instead of breaking the line (sampled values with missing samples).
    pub join_gaps: bool,
}

impl Line {
    pub(crate) fn new(
        name: impl Into<String>,
        color: impl Into<String>,
        points: Vec<(f64, Option<f64>)>,
    ) -> Line {
        Line {
            name: name.into(),
            color: color.into(),
            points,
            dashed: false,
            bold: false,
            join_gaps: false,
        }
    }
}

/// A rectangle in data units (stacked bars, histogram bins).
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// Left edge (x units).
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom (y units).
    pub y0: f64,
    /// Top.
    pub y1: f64,
    /// Fill.
    pub color: String,
    /// Tooltip.
    pub tip: String,
}

/// A vertical marker (percentiles).
#[derive(Debug, Clone)]
pub(crate) struct Marker {
    /// Where (x units).
    pub x: f64,
    /// Its label.
    pub label: String,
}

/// A hover band: a transparent column whose tooltip lists the values at that x.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    /// Left edge (x units).
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Tooltip.
    pub tip: String,
}

/// One legend entry.
#[derive(Debug, Clone)]
pub(crate) struct LegendItem {
    /// Name.
    pub name: String,
    /// Colour.
    pub color: String,
    /// Drawn as a dashed line.
    pub dashed: bool,
    /// Drawn as a filled box (bars) instead of a line.
    pub block: bool,
}

/// Everything one chart shows.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// Element id (stable: tests and users' stylesheets find charts by it).
    pub id: &'static str,
    /// Caption above the chart.
    pub title: String,
    /// What y measures, shown under the caption (e.g. "tokens/s").
    pub unit: String,
    /// X mapping.
    pub x: XAxis,
    /// Lines.
    pub lines: Vec<Line>,
    /// Bars.
    pub bars: Vec<Bar>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Hover bands.
    pub bands: Vec<Band>,
    /// Legend (lines and bar series).
    pub legend: Vec<LegendItem>,
    /// Shown in the middle when there is nothing to draw.
    pub empty: String,
    /// Format y tick labels as durations in seconds.
    pub y_seconds: bool,
}

impl Chart {
    pub(crate) fn new(
        id: &'static str,
        title: impl Into<String>,
        unit: impl Into<String>,
        x: XAxis,
    ) -> Chart {
        Chart {
            id,
            title: title.into(),
            unit: unit.into(),
            x,
            lines: Vec::new(),
            bars: Vec::new(),
            markers: Vec::new(),
            bands: Vec::new(),
            legend: Vec::new(),
            empty: "no data".into(),
            y_seconds: false,
        }
    }

    /// Adds a line and its legend entry.
    pub(crate) fn line(&mut self, line: Line) {
        self.legend.push(LegendItem {
            name: line.name.clone(),
            color: line.color.clone(),
            dashed: line.dashed,
            block: false,
        });
        self.lines.push(line);
    }

    fn has_data(&self) -> bool {
        self.bars.iter().any(|b| b.y1 > b.y0)
            || self
                .lines
                .iter()
                .any(|l| l.points.iter().any(|(_, y)| y.is_some()))
    }

    /// The `<svg>` element.
    pub(crate) fn svg(&self) -> String {
        let y_top = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1))
            .chain(self.bars.iter().map(|b| b.y1))
            .fold(0.0f64, f64::max);
        let (y_max, y_step) = nice_scale(y_top);
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let px = |x: f64| LEFT + self.x.unit(x).clamp(0.0, 1.0) * pw;
        let py = |y: f64| TOP + ph - (y / y_max).clamp(0.0, 1.0) * ph;

        let mut s = String::with_capacity(8192);
        let _ = write!(
            s,
            r##"<svg class="chart" id="{id}" viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{id}-title" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="11"><title id="{id}-title">{title}</title>"##,
            id = self.id,
            title = escape(&self.title)
        );
        // Grid and y labels.
        s.push_str(r##"<g class="grid" stroke="#e6e6e6" stroke-width="1">"##);
        let mut y = 0.0;
        let mut labels = String::new();
        while y <= y_max + y_step * 1e-6 {
            let yy = py(y);
            let _ = write!(
                s,
                r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/>"#,
                W - RIGHT
            );
            let text = if self.y_seconds {
                fmt_duration_s(y)
            } else {
                fmt_num(y)
            };
            let _ = write!(
                labels,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"#,
                LEFT - 6.0,
                yy + 3.5
            );
            y += y_step;
        }
        s.push_str("</g>");
        // X ticks.
        let mut xl = String::new();
        let mut xg = String::new();
        for (x, text) in x_ticks(self.x) {
            let xx = px(x);
            let _ = write!(
                xg,
                r#"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}"/>"#,
                TOP + ph
            );
            let _ = write!(
                xl,
                r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{text}</text>"#,
                H - BOTTOM + 15.0
            );
        }
        let _ = write!(
            s,
            r##"<g class="grid" stroke="#f0f0f0" stroke-width="1">{xg}</g>"##
        );
        let _ = write!(
            s,
            r##"<g class="axis" fill="#555">{labels}{xl}</g><line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#999" stroke-width="1"/>"##,
            b = TOP + ph,
            r = W - RIGHT
        );

        if !self.bars.is_empty() {
            s.push_str(r#"<g class="bars">"#);
            for b in &self.bars {
                if b.y1 <= b.y0 {
                    continue;
                }
                let (x0, x1) = (px(b.x0), px(b.x1));
                let w = (x1 - x0 - 0.5).max(0.8);
                let (top, bottom) = (py(b.y1), py(b.y0));
                let _ = write!(
                    s,
                    r#"<rect class="bar" x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                    (bottom - top).max(0.8),
                    b.color,
                    escape(&b.tip)
                );
            }
            s.push_str("</g>");
        }
        if !self.lines.is_empty() {
            s.push_str(
                r#"<g class="lines" fill="none" stroke-linejoin="round" stroke-linecap="round">"#,
            );
            for l in &self.lines {
                let d = path(l, &px, &py);
                if d.is_empty() {
                    continue;
                }
                let _ = write!(
                    s,
                    r#"<path class="line{}" d="{d}" stroke="{}" stroke-width="{}"{}><title>{}</title></path>"#,
                    if l.dashed { " limit" } else { "" },
                    l.color,
                    if l.bold { 2.5 } else { 1.6 },
                    if l.dashed {
                        r#" stroke-dasharray="5 3""#
                    } else {
                        ""
                    },
                    escape(&l.name)
                );
                // A line of one or two points is hard to see: mark them.
                let defined: Vec<(f64, f64)> = l
                    .points
                    .iter()
                    .filter_map(|(x, y)| y.map(|y| (*x, y)))
                    .collect();
                if defined.len() <= 2 {
                    for (x, y) in defined {
                        let _ = write!(
                            s,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                            px(x),
                            py(y),
                            l.color
                        );
                    }
                }
            }
            s.push_str("</g>");
        }
        for (k, m) in self.markers.iter().enumerate() {
            let xx = px(m.x);
            // Percentiles are often close together: stagger their labels.
            let label_y = TOP + 10.0 + 12.0 * k as f64;
            let _ = write!(
                s,
                r##"<g class="marker"><line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#444" stroke-width="1" stroke-dasharray="2 2"/><text x="{:.1}" y="{:.1}" fill="#333">{}</text></g>"##,
                TOP + ph,
                xx + 3.0,
                label_y,
                escape(&m.label)
            );
        }
        if !self.has_data() {
            let _ = write!(
                s,
                r##"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888" font-size="14">{}</text>"##,
                LEFT + pw / 2.0,
                TOP + ph / 2.0,
                escape(&self.empty)
            );
        }
        if !self.bands.is_empty() {
            s.push_str(r#"<g class="hover">"#);
            for b in &self.bands {
                let (x0, x1) = (px(b.x0), px(b.x1));
                let _ = write!(
                    s,
                    r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{ph:.1}" fill="transparent"><title>{}</title></rect>"#,
                    (x1 - x0).max(0.5),
                    escape(&b.tip)
                );
            }
            s.push_str("</g>");
        }
        s.push_str("</svg>");
        s
    }
}

/// `M x y L x y …`, broken at gaps unless the line joins them.
fn path(l: &Line, px: &dyn Fn(f64) -> f64, py: &dyn Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for &(x, y) in &l.points {
        match y {
            Some(y) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if pen_down { "L" } else { "M" },
                    px(x),
                    py(y)
                );
                pen_down = true;
            }
            None if !l.join_gaps => pen_down = false,
            None => {}
        }
    }
    d
}

/// The top of the y axis and its tick step: 1, 2, 2.5 or 5 × 10^k, about five ticks.
pub(crate) fn nice_scale(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil().max(1.0) * step, step)
}

fn x_ticks(axis: XAxis) -> Vec<(f64, String)> {
    match axis {
        XAxis::Time { max } => {
            const STEPS: &[f64] = &[
                1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
                7200.0, 14400.0, 21600.0, 43200.0, 86400.0,
            ];
            let step = STEPS
                .iter()
                .copied()
                .find(|s| max / s <= 8.0)
                .unwrap_or(86400.0 * (max / 86400.0 / 8.0).ceil());
            let mut v = Vec::new();
            let mut t = 0.0;
            while t <= max + 1e-9 {
                v.push((t, fmt_clock(t)));
                t += step;
            }
            v
        }
        XAxis::LogMs { lo, hi } => {
            let mut v = Vec::new();
            let mut e = lo.floor() as i32;
            while f64::from(e) <= hi + 1e-9 {
                for m in [1.0, 2.0, 5.0] {
                    let x = m * 10f64.powi(e);
                    let l = x.log10();
                    if l >= lo - 1e-9 && l <= hi + 1e-9 {
                        // Label decades; 2 and 5 only when the axis spans little.
                        let label = if m == 1.0 || hi - lo <= 2.0 {
                            fmt_ms(x)
                        } else {
                            String::new()
                        };
                        v.push((x, label));
                    }
                }
                e += 1;
            }
            v
        }
    }
}

/// `0s`, `45s`, `2m`, `1m30s`, `1h`, `1h05m`.
pub(crate) fn fmt_clock(t: f64) -> String {
    let t = t.round() as u64;
    match t {
        0..60 => format!("{t}s"),
        60..3600 if t.is_multiple_of(60) => format!("{}m", t / 60),
        60..3600 => format!("{}m{:02}s", t / 60, t % 60),
        _ if t.is_multiple_of(3600) => format!("{}h", t / 3600),
        _ => format!("{}h{:02}m", t / 3600, (t % 3600) / 60),
    }
}

/// `0.5 ms`, `20 ms`, `1.5 s`, `2 min`.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{} µs", trim(ms * 1000.0))
    } else if ms < 1000.0 {
        format!("{} ms", trim(ms))
    } else if ms < 120_000.0 {
        format!("{} s", trim(ms / 1000.0))
    } else {
        format!("{} min", trim(ms / 60_000.0))
    }
}

fn fmt_duration_s(s: f64) -> String {
    if s == 0.0 {
        "0".into()
    } else {
        fmt_ms(s * 1000.0)
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 || (v.fract() == 0.0) {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// `0`, `2.5`, `950`, `12k`, `1.2M`.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(0.0), (1.0, 0.25));
        assert_eq!(nice_scale(7.3), (8.0, 2.0));
        assert_eq!(nice_scale(1234.0), (1250.0, 250.0));
        assert_eq!(nice_scale(100.0), (100.0, 20.0));
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(fmt_clock(90.0), "1m30s");
        assert_eq!(fmt_clock(3900.0), "1h05m");
        assert_eq!(fmt_ms(0.5), "500 µs");
        assert_eq!(fmt_ms(250.0), "250 ms");
        assert_eq!(fmt_ms(1500.0), "1.5 s");
        assert_eq!(fmt_num(12_500.0), "12.5k");
        assert_eq!(fmt_num(2.5), "2.5");
        let ticks = x_ticks(XAxis::Time { max: 95.0 });
        assert_eq!(ticks.first().unwrap().1, "0s");
        assert!(ticks.len() <= 9, "{ticks:?}");
        let log = x_ticks(XAxis::LogMs { lo: 1.0, hi: 4.0 });
        assert!(
            log.iter().any(|(x, l)| *x == 100.0 && l == "100 ms"),
            "{log:?}"
        );
    }

    #[test]
    fn lines_break_at_gaps_unless_joined() {
        let mut l = Line::new(
            "a",
            "#000",
            vec![(0.0, Some(1.0)), (1.0, None), (2.0, Some(2.0))],
        );
        let id = |v: f64| v;
        assert_eq!(path(&l, &id, &id).matches('M').count(), 2);
        l.join_gaps = true;
        assert_eq!(path(&l, &id, &id).matches('M').count(), 1);
    }

    #[test]
    fn svg_is_well_formed_and_escapes_text() {
        let mut c = Chart::new("t", "a <b> & c", "u", XAxis::Time { max: 10.0 });
        c.line(Line::new(
            "<x>",
            PALETTE[0],
            vec![(0.5, Some(1.0)), (1.5, Some(3.0)), (2.5, Some(2.0))],
        ));
        c.bands.push(Band {
            x0: 0.0,
            x1: 1.0,
            tip: "\"q\"".into(),
        });
        let svg = c.svg();
        assert!(svg.starts_with(r#"<svg class="chart" id="t""#));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(!svg.contains("<x>"));
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(!svg.contains("class=\"empty\""));
        let empty = Chart::new("e", "e", "u", XAxis::Time { max: 1.0 }).svg();
        assert!(empty.contains("class=\"empty\""));
    }
}
