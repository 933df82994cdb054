//! `--structured auto|on|off`: whether requests carry `response_format` json_schema, so that the
//! server constrains decoding to the schema.
//!
//! `auto` sends it only when every backend is known to honour it, from the engine its metrics
//! name: vLLM (≥ 0.6; `drover sim` and the embedded engine imitate it) and SGLang. Others are
//! left out on purpose: llama-server accepted the `json_schema` type only from late 2024 and
//! older builds fail the request (a failed task, not an ignored field); TGI and Ollama take their
//! own fields; a backend without metrics tells nothing. Without it the answers still get the
//! prompt, validation and repair, which work with any server.

use drover_client::EngineKind;
use drover_sched::BackendSpec;

/// The flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Structured {
    /// Send when every backend is known to honour it.
    #[default]
    Auto,
    /// Always send.
    On,
    /// Never send.
    Off,
}

/// The decision and why, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredPlan {
    /// Whether `response_format` is sent.
    pub send: bool,
    /// One line saying why.
    pub why: String,
}

/// Engines whose OpenAI server enforces `response_format` json_schema.
pub fn honours_json_schema(engine: EngineKind) -> bool {
    matches!(engine, EngineKind::Vllm | EngineKind::Sglang)
}

/// Decides for `mode` over the fleet.
pub fn decide(mode: Structured, backends: &[BackendSpec]) -> StructuredPlan {
    match mode {
        Structured::On => StructuredPlan {
            send: true,
            why: "--structured on".into(),
        },
        Structured::Off => StructuredPlan {
            send: false,
            why: "--structured off".into(),
        },
        Structured::Auto => {
            let unknown: Vec<String> = backends
                .iter()
                .filter_map(|b| match &b.signals {
                    Some(s) if honours_json_schema(s.engine) => None,
                    Some(s) => Some(format!("{} runs {}", b.addr.label, s.engine.name())),
                    None => Some(format!("{} publishes no engine metrics", b.addr.label)),
                })
                .collect();
            if backends.is_empty() {
                return StructuredPlan {
                    send: false,
                    why: "no backend to ask".into(),
                };
            }
            if unknown.is_empty() {
                let mut engines: Vec<&str> = backends
                    .iter()
                    .filter_map(|b| b.signals.as_ref())
                    .map(|s| s.engine.name())
                    .collect();
                engines.dedup();
                StructuredPlan {
                    send: true,
                    why: format!("every backend runs {}", engines.join("/")),
                }
            } else {
                let shown = unknown
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = if unknown.len() > 3 {
                    format!(" and {} more", unknown.len() - 3)
                } else {
                    String::new()
                };
                StructuredPlan {
                    send: false,
                    why: format!(
                        "{shown}{more}: relying on the prompt, validation and repair (--structured on sends it anyway)"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_client::{BackendAddr, LoadSignals};

    fn backend(port: u16, engine: Option<EngineKind>) -> BackendSpec {
        BackendSpec {
            addr: BackendAddr::parse(&port.to_string()).unwrap(),
            signals: engine.map(|engine| LoadSignals {
                engine,
                running: None,
                waiting: None,
                kv_usage: None,
                generation_tokens: None,
                kv_capacity_tokens: None,
            }),
            scraper: Default::default(),
        }
    }

    #[test]
    fn auto_sends_only_when_every_backend_honours_it() {
        let all = [
            backend(8001, Some(EngineKind::Vllm)),
            backend(8002, Some(EngineKind::Sglang)),
        ];
        let p = decide(Structured::Auto, &all);
        assert!(p.send);
        assert_eq!(p.why, "every backend runs vLLM/SGLang");
        let mixed = [
            backend(8001, Some(EngineKind::Vllm)),
            backend(8002, None),
            backend(8003, Some(EngineKind::LlamaCpp)),
        ];
        let p = decide(Structured::Auto, &mixed);
        assert!(!p.send);
        assert!(
            p.why.contains("publishes no engine metrics") && p.why.contains("runs llama.cpp"),
            "{}",
            p.why
        );
    }

    #[test]
    fn on_and_off_do_not_look() {
        let none = [backend(8001, None)];
        assert!(decide(Structured::On, &none).send);
        assert!(!decide(Structured::Off, &[backend(8001, Some(EngineKind::Vllm))]).send);
    }
}
