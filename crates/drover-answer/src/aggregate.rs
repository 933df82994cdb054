//! The summary's `answers` section, built as tasks finish ([`AnswerSink`]): per field, counts per
//! value, min/mean/max, and how many tasks had it. Memory is bounded by the number of distinct
//! values kept per field ([`DISTINCT_CAP`]), never by the number of tasks.

use std::collections::HashMap;
use std::sync::Mutex;

use drover_job::AnswerSink;
use drover_types::Task;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::fields::{Field, FieldKind, SHORT_STRING, value_key};

/// Distinct values counted per field; later new values go to [`OTHER`].
pub const DISTINCT_CAP: usize = 1000;

/// The counts key of values past [`DISTINCT_CAP`] (parenthesised so it cannot be mistaken for
/// an enum value such as "other").
pub const OTHER: &str = "(other)";

/// Values shown per field in the printed report.
const SHOWN: usize = 6;

#[derive(Debug, Default, Clone)]
struct FieldStats {
    counts: HashMap<String, u64>,
    /// Declared values (enum, boolean, small range), in declaration order, for the report.
    declared: Vec<String>,
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    present: u64,
    missing: u64,
}

/// Aggregates of the answers' fields.
#[derive(Debug)]
pub struct Aggregates {
    fields: Vec<Field>,
    cap: usize,
    stats: Mutex<Vec<FieldStats>>,
}

impl Aggregates {
    /// Aggregates for `fields`, keeping up to [`DISTINCT_CAP`] distinct values each.
    pub fn new(fields: Vec<Field>) -> Aggregates {
        Aggregates::with_cap(fields, DISTINCT_CAP)
    }

    /// Aggregates keeping up to `cap` distinct values per field.
    pub fn with_cap(fields: Vec<Field>, cap: usize) -> Aggregates {
        let stats = fields
            .iter()
            .map(|f| {
                let declared = f.kind.declared_values();
                let counts = declared.iter().map(|v| (v.clone(), 0)).collect();
                FieldStats {
                    counts,
                    declared,
                    ..FieldStats::default()
                }
            })
            .collect();
        Aggregates {
            fields,
            cap,
            stats: Mutex::new(stats),
        }
    }

    /// The fields aggregated.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Counts one finished task: its answer object, or `None` when it has none (failed).
    pub fn add(&self, answer: Option<&Map<String, Value>>) {
        let mut stats = self.stats.lock().expect("aggregates lock");
        for (field, st) in self.fields.iter().zip(stats.iter_mut()) {
            let value = answer
                .and_then(|a| a.get(&field.name))
                .filter(|v| !v.is_null());
            let Some(v) = value else {
                st.missing += 1;
                continue;
            };
            st.present += 1;
            if counts_value(&field.kind, v) {
                let key = value_key(v);
                if let Some(n) = st.counts.get_mut(&key) {
                    *n += 1;
                } else if st.counts.len() < self.cap {
                    st.counts.insert(key, 1);
                } else {
                    *st.counts.entry(OTHER.to_string()).or_default() += 1;
                }
            }
            if let Some(x) = v.as_f64().filter(|_| field.kind.numeric()) {
                if st.n == 0 {
                    (st.min, st.max) = (x, x);
                } else {
                    st.min = st.min.min(x);
                    st.max = st.max.max(x);
                }
                st.n += 1;
                st.sum += x;
            }
        }
    }

    /// The summary section: `{field: {counts, min, mean, max, present, missing}}`.
    pub fn to_json(&self) -> Value {
        let stats = self.stats.lock().expect("aggregates lock");
        let mut out = Map::new();
        for (field, st) in self.fields.iter().zip(stats.iter()) {
            let mut f = Map::new();
            if field.kind.counted() {
                f.insert(
                    "counts".into(),
                    Value::Object(
                        st.counts
                            .iter()
                            .map(|(k, n)| (k.clone(), json!(n)))
                            .collect(),
                    ),
                );
            }
            if field.kind.numeric() {
                let integral = matches!(field.kind, FieldKind::Integer { .. });
                let num = |x: f64| {
                    if integral && x.fract() == 0.0 {
                        json!(x as i64)
                    } else {
                        json!(x)
                    }
                };
                let (min, mean, max) = if st.n == 0 {
                    (Value::Null, Value::Null, Value::Null)
                } else {
                    (num(st.min), json!(st.sum / st.n as f64), num(st.max))
                };
                f.insert("min".into(), min);
                f.insert("mean".into(), mean);
                f.insert("max".into(), max);
            }
            f.insert("present".into(), json!(st.present));
            f.insert("missing".into(), json!(st.missing));
            out.insert(field.name.clone(), Value::Object(f));
        }
        Value::Object(out)
    }

    /// One line per field for the run's report: the most frequent values, min/mean/max, misses.
    pub fn report(&self) -> Vec<String> {
        let stats = self.stats.lock().expect("aggregates lock");
        let width = self
            .fields
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(0);
        let mut lines = Vec::new();
        for (field, st) in self.fields.iter().zip(stats.iter()) {
            let mut parts: Vec<String> = Vec::new();
            if field.kind.counted() && !st.counts.is_empty() {
                let mut seen: Vec<(&String, u64)> = if st.declared.is_empty() {
                    let mut v: Vec<(&String, u64)> =
                        st.counts.iter().map(|(k, n)| (k, *n)).collect();
                    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                    v
                } else {
                    // Declared order reads best (1…5, positive/negative/mixed); extras after.
                    let mut v: Vec<(&String, u64)> =
                        st.declared.iter().map(|k| (k, st.counts[k])).collect();
                    v.extend(
                        st.counts
                            .iter()
                            .filter(|(k, _)| !st.declared.contains(k))
                            .map(|(k, n)| (k, *n)),
                    );
                    v
                };
                let more = seen.len().saturating_sub(SHOWN);
                seen.truncate(SHOWN);
                let mut text = seen
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if more > 0 {
                    text.push_str(&format!(", … {more} more values"));
                }
                parts.push(text);
            }
            if field.kind.numeric() && st.n > 0 {
                parts.push(format!(
                    "min {}, mean {:.2}, max {}",
                    short_num(st.min),
                    st.sum / st.n as f64,
                    short_num(st.max)
                ));
            }
            if parts.is_empty() {
                parts.push(format!("{} present", st.present));
            }
            if st.missing > 0 {
                parts.push(format!("{} missing", st.missing));
            }
            lines.push(format!("  {:<width$}  {}", field.name, parts.join("; ")));
        }
        lines
    }
}

/// Whether `v` goes into the counts of a field of `kind`.
fn counts_value(kind: &FieldKind, v: &Value) -> bool {
    match kind {
        FieldKind::Any => match v {
            Value::Bool(_) => true,
            Value::String(s) => s.chars().count() as u64 <= SHORT_STRING,
            _ => false,
        },
        other => other.counted(),
    }
}

fn short_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl AnswerSink for Aggregates {
    fn accept(&self, _task: &Task, answer: &RawValue) {
        match serde_json::from_str::<Map<String, Value>>(answer.get()) {
            Ok(obj) => self.add(Some(&obj)),
            // Not an object (cannot come from this crate's checker): every field is missing.
            Err(_) => self.add(None),
        }
    }

    fn reject(&self, _task: &Task) {
        self.add(None);
    }

    fn summary(&self) -> Option<Value> {
        Some(self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldKind) -> Field {
        Field {
            name: name.into(),
            kind,
        }
    }

    fn review_fields() -> Vec<Field> {
        vec![
            field(
                "sentiment",
                FieldKind::Enum(vec![json!("positive"), json!("negative"), json!("mixed")]),
            ),
            field(
                "rating",
                FieldKind::Integer {
                    range: Some((1, 5)),
                },
            ),
            field("recommend", FieldKind::Boolean),
            field("topic", FieldKind::ShortString),
            field("price", FieldKind::Number),
            field("notes", FieldKind::Text),
        ]
    }

    fn add(a: &Aggregates, v: Value) {
        a.add(Some(v.as_object().unwrap()));
    }

    #[test]
    fn counts_means_and_presence_on_a_known_set() {
        let a = Aggregates::new(review_fields());
        add(
            &a,
            json!({"sentiment": "positive", "rating": 5, "recommend": true, "topic": "fit", "price": 10.5, "notes": "long"}),
        );
        add(
            &a,
            json!({"sentiment": "positive", "rating": 4, "recommend": true, "topic": "fit", "price": 20}),
        );
        add(
            &a,
            json!({"sentiment": "negative", "rating": 1, "recommend": false, "topic": "battery", "price": null}),
        );
        a.add(None);
        let s = a.to_json();
        assert_eq!(
            s["sentiment"],
            json!({"counts": {"positive": 2, "negative": 1, "mixed": 0}, "present": 3, "missing": 1})
        );
        assert_eq!(
            s["rating"],
            json!({"counts": {"1": 1, "2": 0, "3": 0, "4": 1, "5": 1}, "min": 1, "mean": 10.0 / 3.0, "max": 5, "present": 3, "missing": 1})
        );
        assert_eq!(
            s["recommend"],
            json!({"counts": {"true": 2, "false": 1}, "present": 3, "missing": 1})
        );
        assert_eq!(
            s["topic"],
            json!({"counts": {"fit": 2, "battery": 1}, "present": 3, "missing": 1})
        );
        assert_eq!(
            s["price"],
            json!({"min": 10.5, "mean": 15.25, "max": 20.0, "present": 2, "missing": 2})
        );
        assert_eq!(s["notes"], json!({"present": 1, "missing": 3}));
    }

    #[test]
    fn numbers_without_values_are_null() {
        let a = Aggregates::new(vec![field("x", FieldKind::Number)]);
        a.add(None);
        assert_eq!(
            a.to_json()["x"],
            json!({"min": null, "mean": null, "max": null, "present": 0, "missing": 1})
        );
    }

    #[test]
    fn distinct_values_are_capped_into_other() {
        let a = Aggregates::with_cap(vec![field("t", FieldKind::ShortString)], 3);
        for v in ["a", "b", "c", "d", "e", "a"] {
            add(&a, json!({"t": v}));
        }
        assert_eq!(
            a.to_json()["t"]["counts"],
            json!({"a": 2, "b": 1, "c": 1, "(other)": 2})
        );
    }

    #[test]
    fn undeclared_fields_count_short_values_and_average_numbers() {
        let a = Aggregates::new(vec![field("v", FieldKind::Any)]);
        for v in [
            json!(true),
            json!("short"),
            json!("x".repeat(100)),
            json!(2),
            json!(4),
            json!({"o": 1}),
        ] {
            add(&a, json!({ "v": v }));
        }
        assert_eq!(
            a.to_json()["v"],
            json!({"counts": {"true": 1, "short": 1}, "min": 2.0, "mean": 3.0, "max": 4.0, "present": 6, "missing": 0})
        );
    }

    #[test]
    fn report_lines_read_well() {
        let a = Aggregates::new(review_fields());
        add(
            &a,
            json!({"sentiment": "mixed", "rating": 3, "recommend": false, "topic": "fit", "price": 2.5}),
        );
        a.add(None);
        let r = a.report();
        assert_eq!(
            r[0],
            "  sentiment  positive 0, negative 0, mixed 1; 1 missing"
        );
        assert_eq!(
            r[1],
            "  rating     1 0, 2 0, 3 1, 4 0, 5 0; min 3, mean 3.00, max 3; 1 missing"
        );
        assert_eq!(r[4], "  price      min 2.5, mean 2.50, max 2.5; 1 missing");
        assert_eq!(r[5], "  notes      0 present; 2 missing");
    }

    #[test]
    fn sink_reads_raw_answers() {
        let a = Aggregates::new(vec![field("k", FieldKind::Boolean)]);
        let task = Task {
            line: 1,
            custom_id: "t".into(),
            endpoint: drover_types::Endpoint::ChatCompletions,
            body: bytes::Bytes::new(),
            prompt_tokens_est: 0,
            max_tokens: None,
            group: 0,
        };
        a.accept(
            &task,
            &serde_json::value::to_raw_value(&json!({"k": false})).unwrap(),
        );
        a.reject(&task);
        assert_eq!(
            a.summary().unwrap()["k"],
            json!({"counts": {"true": 0, "false": 1}, "present": 1, "missing": 1})
        );
    }
}
