//! The lines printed for steps 3–5 after the job, from the output's records (so a resumed run
//! reports the whole output, not only its own part).

use crate::pipeline::{Parse, Pipeline};
use crate::table::OutputCounts;

/// Steps 3 (parse), 4 (repair) and 5 (aggregate), with the aggregates under step 5.
pub fn steps(p: &Pipeline, c: &OutputCounts, rows: u64) -> Vec<String> {
    let mut lines = vec![parse_line(p, c), repair_line(p, c)];
    lines.push(match &p.table {
        Some(t) => format!(
            "[step 5/6] aggregate: table {} ({rows} row{}, input order)",
            t.path.display(),
            plural(rows)
        ),
        None if p.aggregates.is_some() => {
            "[step 5/6] aggregate: in the summary's \"answers\" (no --table)".to_string()
        }
        None => "[step 5/6] aggregate: nothing to aggregate".to_string(),
    });
    if let Some(a) = &p.aggregates {
        lines.extend(a.report());
    }
    lines
}

fn parse_line(p: &Pipeline, c: &OutputCounts) -> String {
    let mut s = match p.parse {
        Parse::Text => format!(
            "[step 3/6] parse: {} answer text{} (no --schema: not validated)",
            c.succeeded,
            plural(c.succeeded)
        ),
        Parse::Object | Parse::Schema => format!(
            "[step 3/6] parse: {} answer{} parsed, {} valid at first try",
            c.answered(),
            plural(c.answered()),
            c.first_try
        ),
    };
    if c.failed_other() > 0 {
        let codes: Vec<String> = c
            .failed
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        s.push_str(&format!(
            "; {} task{} got no answer ({})",
            c.failed_other(),
            plural(c.failed_other()),
            codes.join(", ")
        ));
    }
    if c.unreadable > 0 {
        s.push_str(&format!(
            "; {} unreadable output line{} skipped",
            c.unreadable,
            plural(c.unreadable)
        ));
    }
    if let Some(st) = &p.structured {
        s.push_str(&format!(
            "; response_format json_schema {} ({})",
            if st.send { "sent" } else { "not sent" },
            st.why
        ));
    }
    s
}

fn repair_line(p: &Pipeline, c: &OutputCounts) -> String {
    match p.parse {
        Parse::Text => {
            "[step 4/6] repair: none (no --schema or --fields to check answers against)".to_string()
        }
        _ if p.max_repairs == 0 => {
            format!("[step 4/6] repair: off (--repair 0), {} invalid", c.invalid)
        }
        _ => format!(
            "[step 4/6] repair: {} repaired{}, {} still invalid after {} repair{}",
            c.repaired,
            if c.repaired > 0 {
                format!(" ({} round{})", c.repair_rounds, plural(c.repair_rounds))
            } else {
                String::new()
            },
            c.invalid,
            p.max_repairs,
            plural(u64::from(p.max_repairs))
        ),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Options;
    use crate::structured::StructuredPlan;

    fn counts() -> OutputCounts {
        OutputCounts {
            records: 10,
            succeeded: 8,
            first_try: 6,
            repaired: 2,
            repair_rounds: 3,
            invalid: 1,
            failed: [("timeout".to_string(), 1)].into(),
            unreadable: 0,
        }
    }

    #[test]
    fn schema_run_report() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("s.json");
        std::fs::write(
            &schema,
            r#"{"type":"object","properties":{"ok":{"type":"boolean"}}}"#,
        )
        .unwrap();
        let opts = Options {
            schema: Some(schema),
            table: Some(dir.path().join("t.csv")),
            ..Options::default()
        };
        let mut p = Pipeline::plan(&opts, &[]).unwrap().unwrap();
        p.structured = Some(StructuredPlan {
            send: true,
            why: "every backend runs vLLM".into(),
        });
        let lines = steps(&p, &counts(), 10);
        assert_eq!(
            lines[0],
            "[step 3/6] parse: 9 answers parsed, 6 valid at first try; 1 task got no answer (timeout 1); \
             response_format json_schema sent (every backend runs vLLM)"
        );
        assert_eq!(
            lines[1],
            "[step 4/6] repair: 2 repaired (3 rounds), 1 still invalid after 2 repairs"
        );
        assert_eq!(
            lines[2],
            format!(
                "[step 5/6] aggregate: table {} (10 rows, input order)",
                dir.path().join("t.csv").display()
            )
        );
        assert_eq!(lines[3], "  ok  true 0, false 0");
    }

    #[test]
    fn text_run_report() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            table: Some(dir.path().join("t.csv")),
            ..Options::default()
        };
        let p = Pipeline::plan(&opts, &[]).unwrap().unwrap();
        let lines = steps(
            &p,
            &OutputCounts {
                records: 1,
                succeeded: 1,
                first_try: 1,
                ..OutputCounts::default()
            },
            1,
        );
        assert_eq!(
            lines[0],
            "[step 3/6] parse: 1 answer text (no --schema: not validated)"
        );
        assert!(lines[1].starts_with("[step 4/6] repair: none"));
        assert_eq!(lines.len(), 3);
    }
}
