//! Headless Chromium for the report tests: the DOM after load, a screenshot, and what the
//! screenshot's pixels say. Chromium comes from `scripts/setup.sh --test` (`DROVER_CHROMIUM`
//! points elsewhere); a missing browser fails the test, it never skips it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The window: a laptop's width, tall enough for the whole report.
pub const WIDTH: u32 = 1366;
/// Window height.
pub const HEIGHT: u32 = 2400;

/// The Chromium binary, or a failure that says how to install it.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_CHROMIUM").map(PathBuf::from) {
        assert!(
            p.exists(),
            "DROVER_CHROMIUM={} does not exist; unset it to use the Chromium of `scripts/setup.sh --test`",
            p.display()
        );
        return p;
    }
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "Chromium is not installed (looked for /usr/bin/chromium; DROVER_CHROMIUM overrides): \
         install the test tools with `scripts/setup.sh --test`"
    );
}

fn browser(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c.arg(format!("--window-size={WIDTH},{HEIGHT}"));
    c
}

fn url(html: &Path) -> String {
    format!("file://{}", html.canonicalize().unwrap().display())
}

/// The DOM after load (and after the page's scripts ran).
pub fn dump_dom(html: &Path, profile: &Path) -> String {
    let o = super::common::run_for(
        browser(profile).arg("--dump-dom").arg(url(html)),
        Duration::from_secs(90),
    );
    assert!(
        o.status.success(),
        "chromium --dump-dom failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        dom.contains("<svg"),
        "chromium dumped no page:\n{dom}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    dom
}

/// A screenshot of the window.
pub fn screenshot(html: &Path, png: &Path, profile: &Path) -> Image {
    let o = super::common::run_for(
        browser(profile)
            .arg(format!("--screenshot={}", png.display()))
            .arg(url(html)),
        Duration::from_secs(90),
    );
    assert!(
        png.exists(),
        "chromium wrote no screenshot:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Image::load(png)
}

/// One `<svg class="chart">` of a DOM dump.
#[derive(Debug)]
pub struct ChartEl {
    /// Its id.
    pub id: String,
    /// Its opening tag.
    pub tag: String,
    /// Everything inside it.
    pub body: String,
}

impl ChartEl {
    /// `data-box`: where the page put it (x, y, width, height in CSS pixels).
    pub fn bbox(&self) -> Option<(u32, u32, u32, u32)> {
        let v: Vec<u32> = attr(&self.tag, "data-box")?
            .split(',')
            .map(|n| n.parse().unwrap())
            .collect();
        Some((v[0], v[1], v[2], v[3]))
    }

    /// `d` of every `<path class="{class}" …>`.
    pub fn paths(&self, class: &str) -> Vec<String> {
        elements(&self.body, "<path ")
            .into_iter()
            .filter(|t| attr(t, "class").as_deref() == Some(class))
            .filter_map(|t| attr(&t, "d"))
            .collect()
    }

    /// Opening tags of `<rect class="bar">`.
    pub fn bars(&self) -> Vec<String> {
        elements(&self.body, "<rect ")
            .into_iter()
            .filter(|t| attr(t, "class").as_deref() == Some("bar"))
            .collect()
    }
}

/// Every chart of a page, in document order.
pub fn charts(dom: &str) -> Vec<ChartEl> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find("<svg ") {
        let after = &rest[i..];
        let tag_end = after.find('>').unwrap() + 1;
        let tag = &after[..tag_end];
        let close = after.find("</svg>").unwrap();
        if attr(tag, "class").as_deref() == Some("chart") {
            out.push(ChartEl {
                id: attr(tag, "id").unwrap_or_default(),
                tag: tag.to_string(),
                body: after[tag_end..close].to_string(),
            });
        }
        rest = &after[close..];
    }
    out
}

fn elements(s: &str, open: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        let end = rest[i..].find('>').unwrap() + i + 1;
        v.push(rest[i..end].to_string());
        rest = &rest[end..];
    }
    v
}

/// An attribute of an opening tag.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let end = tag[i..].find('"')? + i;
    Some(tag[i..end].to_string())
}

/// Points in an SVG path's `d`.
pub fn points(d: &str) -> usize {
    d.matches(['M', 'L']).count()
}

/// An RGB image.
pub struct Image {
    pub width: u32,
    pub height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Image {
    fn load(path: &Path) -> Image {
        let mut decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        assert!(
            channels >= 3,
            "unexpected PNG colour type {:?}",
            info.color_type
        );
        let rgb = buf[..info.buffer_size()]
            .chunks(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        self.rgb[(y * self.width + x) as usize]
    }

    /// Pixels in a box that `pred` accepts.
    pub fn count(
        &self,
        (x, y, w, h): (u32, u32, u32, u32),
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        let mut n = 0;
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                n += usize::from(pred(self.pixel(xx, yy)));
            }
        }
        n
    }
}

/// Not (near) white.
pub fn ink(p: [u8; 3]) -> bool {
    p.iter().any(|c| *c < 235)
}

/// Within `tol` of a `#rrggbb` colour on every channel.
pub fn near(hex: &str, tol: u8) -> impl Fn([u8; 3]) -> bool {
    let h = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    let want = [(h >> 16) as u8, (h >> 8) as u8, h as u8];
    move |p: [u8; 3]| p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= tol)
}
