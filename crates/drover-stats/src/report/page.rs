//! The page around the charts: one HTML file with its stylesheet inline, sized for a laptop
//! (two charts side by side from 900 px up, one column below).

use std::fmt::Write as _;

use super::svg::{Chart, LegendItem};

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#fff;color:#222;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1320px;margin:0 auto;padding:16px 20px 32px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:24px 0 8px}
.meta{color:#555;margin:0}
.meta span{margin-right:14px;white-space:nowrap}
.badge{display:inline-block;background:#e15759;color:#fff;border-radius:3px;padding:0 6px;font-size:12px;margin-left:8px;vertical-align:middle}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:10px;margin:16px 0}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px}
.card .v{font-size:20px;font-weight:600}
.card .k{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{color:#555;font-weight:600;border-bottom:1px solid #ccc}
th:first-child,td:first-child{text-align:left}
td.l{text-align:left;white-space:normal}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.share{position:relative}
.share i{position:absolute;left:0;top:3px;bottom:3px;background:#e8f0f8;z-index:-1}
.scroll{overflow-x:auto}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
@media (max-width:900px){.charts{grid-template-columns:1fr}}
figure{margin:0;border:1px solid #e3e3e3;border-radius:6px;padding:10px 12px 8px}
figcaption{font-weight:600;margin-bottom:2px}
figcaption small{font-weight:400;color:#777;margin-left:6px}
svg.chart{display:block;width:100%;height:auto}
svg.chart .hover rect:hover{fill:rgba(0,0,0,.06)}
ul.legend{list-style:none;margin:4px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:#444}
ul.legend li{white-space:nowrap}
ul.legend svg{vertical-align:middle;margin-right:4px}
footer{margin-top:28px;color:#888;font-size:12px}
"#;

/// Records where each chart landed (`data-box="x,y,width,height"`, CSS pixels), so automated
/// checks of the rendered page (tests, CI screenshots) can find them. The charts need no script.
const BOX_SCRIPT: &str = "document.querySelectorAll('svg.chart').forEach(function(s){var r=s.getBoundingClientRect();\
s.setAttribute('data-box',[r.left+window.scrollX,r.top+window.scrollY,r.width,r.height].map(Math.round).join(','));});";

/// A page being written.
pub(crate) struct Page {
    html: String,
}

impl Page {
    pub(crate) fn new(title: &str) -> Page {
        let mut html = String::with_capacity(64 * 1024);
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>\n",
            escape(title)
        );
        Page { html }
    }

    pub(crate) fn raw(&mut self, s: &str) {
        self.html.push_str(s);
    }

    pub(crate) fn header(&mut self, title: &str, badge: Option<&str>, meta: &[(String, String)]) {
        let _ = write!(self.html, "<header><h1>{}", escape(title));
        if let Some(b) = badge {
            let _ = write!(self.html, "<span class=\"badge\">{}</span>", escape(b));
        }
        self.html.push_str("</h1><p class=\"meta\">");
        for (k, v) in meta {
            let _ = write!(
                self.html,
                "<span>{}: <b>{}</b></span> ",
                escape(k),
                escape(v)
            );
        }
        self.html.push_str("</p></header>\n");
    }

    pub(crate) fn cards(&mut self, cards: &[(String, String)]) {
        self.html.push_str("<section class=\"cards\">");
        for (value, key) in cards {
            let _ = write!(
                self.html,
                "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
                escape(value),
                escape(key)
            );
        }
        self.html.push_str("</section>\n");
    }

    pub(crate) fn h2(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", escape(text));
    }

    /// A table; cells are escaped text. `first_color` puts a swatch before each first cell.
    pub(crate) fn table(&mut self, class: &str, headers: &[&str], rows: &[Vec<Cell>]) {
        let _ = write!(
            self.html,
            "<div class=\"scroll\"><table class=\"{}\"><thead><tr>",
            escape(class)
        );
        for h in headers {
            let _ = write!(self.html, "<th>{}</th>", escape(h));
        }
        self.html.push_str("</tr></thead><tbody>");
        for row in rows {
            self.html.push_str("<tr>");
            for cell in row {
                match cell {
                    Cell::Text(t) => {
                        let _ = write!(self.html, "<td>{}</td>", escape(t));
                    }
                    Cell::Left(t) => {
                        let _ = write!(self.html, "<td class=\"l\">{}</td>", escape(t));
                    }
                    Cell::Swatch(color, t) => {
                        let _ = write!(
                            self.html,
                            "<td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
                            escape(color),
                            escape(t)
                        );
                    }
                    Cell::Share(f) => {
                        let pct = (f * 100.0).clamp(0.0, 100.0);
                        let _ = write!(
                            self.html,
                            "<td class=\"share\"><i style=\"width:{pct:.1}%\"></i>{pct:.1}%</td>"
                        );
                    }
                }
            }
            self.html.push_str("</tr>");
        }
        self.html.push_str("</tbody></table></div>\n");
    }

    pub(crate) fn charts(&mut self, charts: &[Chart]) {
        self.html.push_str("<section class=\"charts\">\n");
        for c in charts {
            let _ = write!(
                self.html,
                "<figure><figcaption>{}<small>{}</small></figcaption>",
                escape(&c.title),
                escape(&c.unit)
            );
            self.html.push_str(&c.svg());
            self.html.push_str(&legend(&c.legend));
            self.html.push_str("</figure>\n");
        }
        self.html.push_str("</section>\n");
    }

    pub(crate) fn finish(mut self, footer: &str) -> String {
        let _ = write!(
            self.html,
            "<footer>{}</footer>\n</main><script>{BOX_SCRIPT}</script></body></html>\n",
            escape(footer)
        );
        self.html
    }
}

/// A table cell.
pub(crate) enum Cell {
    /// Right-aligned text.
    Text(String),
    /// Left-aligned, wrapping text.
    Left(String),
    /// A colour swatch and text (the backend's colour in the charts).
    Swatch(String, String),
    /// A share 0–1, drawn as a bar behind the number.
    Share(f64),
}

fn legend(items: &[LegendItem]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = String::from("<ul class=\"legend\">");
    for it in items {
        let mark = if it.block {
            format!(
                r#"<svg width="12" height="10" aria-hidden="true"><rect width="12" height="10" fill="{}"/></svg>"#,
                escape(&it.color)
            )
        } else {
            format!(
                r#"<svg width="20" height="10" aria-hidden="true"><line x1="1" y1="5" x2="19" y2="5" stroke="{}" stroke-width="2.5"{}/></svg>"#,
                escape(&it.color),
                if it.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                }
            )
        };
        let _ = write!(s, "<li>{mark}{}</li>", escape(&it.name));
    }
    s.push_str("</ul>");
    s
}
