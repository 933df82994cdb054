//! From what the user asked (engine, model, GPUs or a count, ports) to one [`InstanceSpec`] per
//! instance, each with its exact command line. No I/O: GPUs and ports come in resolved
//! ([`crate::gpus`], [`crate::ports`]).

use crate::command::CommandLine;
use crate::engine::Engine;
use crate::error::LaunchError;
use crate::template::Values;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct FleetRequest {
    /// The server to run.
    pub engine: Engine,
    /// `--model`: passed to the engine (required by vLLM, SGLang and llama-server).
    pub model: Option<String>,
    /// `--gpus`, resolved: one `CUDA_VISIBLE_DEVICES` value per entry.
    pub gpus: Option<Vec<String>>,
    /// `--instances`: a count, without GPUs.
    pub instances: Option<usize>,
    /// `--per-gpu`: instances sharing each GPU entry (default 1).
    pub per_gpu: Option<usize>,
    /// `--host`: the address every instance listens on.
    pub host: String,
    /// Arguments after `--`, appended to every instance's command.
    pub extra: Vec<String>,
}

/// Where one instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// 0, 1, … in port order.
    pub index: usize,
    /// Its `CUDA_VISIBLE_DEVICES`, when GPUs are used.
    pub gpu: Option<String>,
    /// The address it listens on.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// One instance, ready to run.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Where it runs.
    pub slot: Slot,
    /// `<engine>-<port>`: its name in messages and its log file's stem.
    pub name: String,
    /// Exactly what is executed.
    pub command: CommandLine,
    /// Its URL from this machine, e.g. `http://127.0.0.1:8001`: readiness is checked there and
    /// a job is pointed at it.
    pub url: String,
    /// What to do when the program cannot be executed (not installed, not on `PATH`).
    pub spawn_hint: String,
}

impl FleetRequest {
    /// The GPU of each instance (`None` each without GPUs); its length is the instance count.
    pub fn layout(&self) -> Result<Vec<Option<String>>, LaunchError> {
        let invalid = |flag, message: String| LaunchError::Invalid { flag, message };
        match (&self.gpus, self.instances) {
            (Some(_), Some(_)) => Err(invalid(
                "--instances",
                "with --gpus the count is the number of GPUs × --per-gpu; drop --instances (or --gpus)".into(),
            )),
            (Some(gpus), None) => {
                if gpus.is_empty() {
                    return Err(invalid("--gpus", "no GPU listed; write e.g. --gpus 0,1 or --gpus auto".into()));
                }
                let k = self.per_gpu.unwrap_or(1);
                if k == 0 {
                    return Err(invalid("--per-gpu", "must be at least 1".into()));
                }
                Ok(gpus.iter().flat_map(|g| std::iter::repeat_n(Some(g.clone()), k)).collect())
            }
            (None, n) => {
                if self.per_gpu.is_some() {
                    return Err(invalid("--per-gpu", "needs --gpus (instances without GPUs: --instances N)".into()));
                }
                let n = n.unwrap_or(1);
                if n == 0 {
                    return Err(invalid("--instances", "must be at least 1".into()));
                }
                Ok(vec![None; n])
            }
        }
    }

    /// One spec per instance, on `ports` (one per entry of [`FleetRequest::layout`]).
    pub fn instances(&self, ports: &[u16]) -> Result<Vec<InstanceSpec>, LaunchError> {
        let layout = self.layout()?;
        assert_eq!(layout.len(), ports.len(), "one port per instance");
        if self.engine.needs_model() && self.model.is_none() {
            let message = match &self.engine {
                Engine::Custom(_) => {
                    "the --cmd template uses {model}: give it with --model".to_string()
                }
                e => format!(
                    "--engine {} needs the model to serve: --model NAME_OR_PATH",
                    e.name()
                ),
            };
            return Err(LaunchError::Invalid {
                flag: "--model",
                message,
            });
        }
        if let Engine::Custom(t) = &self.engine
            && t.uses("gpu")
            && self.gpus.is_none()
        {
            return Err(LaunchError::Invalid {
                flag: "--cmd",
                message: "the template uses {gpu} but no --gpus was given".into(),
            });
        }
        if self.host.trim().is_empty() {
            return Err(LaunchError::Invalid {
                flag: "--host",
                message: "empty; the default is 127.0.0.1".into(),
            });
        }
        let engine = self.engine.name();
        Ok(layout
            .into_iter()
            .zip(ports)
            .enumerate()
            .map(|(index, (gpu, &port))| {
                let values = Values {
                    port,
                    gpu: gpu.as_deref(),
                    model: self.model.as_deref(),
                    host: &self.host,
                    index,
                };
                let command = self.engine.command(&values, &self.extra);
                InstanceSpec {
                    name: format!("{engine}-{port}"),
                    url: format!("http://{}:{port}", local_host(&self.host)),
                    command,
                    spawn_hint: self.engine.missing_hint(),
                    slot: Slot {
                        index,
                        gpu,
                        host: self.host.clone(),
                        port,
                    },
                }
            })
            .collect())
    }
}

/// How this machine reaches a server listening on `host`: a wildcard address is reached on
/// loopback; an IPv6 literal needs brackets in a URL.
fn local_host(host: &str) -> String {
    match host {
        "0.0.0.0" => "127.0.0.1".into(),
        "::" | "[::]" => "[::1]".into(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    fn req(engine: Engine) -> FleetRequest {
        FleetRequest {
            engine,
            model: Some("m".into()),
            gpus: None,
            instances: None,
            per_gpu: None,
            host: "127.0.0.1".into(),
            extra: vec![],
        }
    }

    #[test]
    fn gpus_times_per_gpu_in_port_order() {
        let mut r = req(Engine::Vllm);
        r.gpus = Some(vec!["0".into(), "1".into()]);
        r.per_gpu = Some(2);
        let specs = r.instances(&[9000, 9001, 9002, 9003]).unwrap();
        let gpus: Vec<_> = specs.iter().map(|s| s.slot.gpu.clone().unwrap()).collect();
        assert_eq!(gpus, ["0", "0", "1", "1"]);
        assert_eq!(specs[3].name, "vllm-9003");
        assert_eq!(specs[3].url, "http://127.0.0.1:9003");
        assert_eq!(
            specs[3].command.env,
            [("CUDA_VISIBLE_DEVICES".to_string(), "1".to_string())]
        );
        assert_eq!(
            specs.iter().map(|s| s.slot.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn counts_without_gpus() {
        let mut r = req(Engine::Sim { exe: "/d".into() });
        assert_eq!(r.layout().unwrap(), [None]);
        r.instances = Some(3);
        assert_eq!(r.layout().unwrap(), [None, None, None]);
        r.host = "0.0.0.0".into();
        assert_eq!(
            r.instances(&[1, 2, 3]).unwrap()[0].url,
            "http://127.0.0.1:1"
        );
        r.host = "::".into();
        assert_eq!(r.instances(&[1, 2, 3]).unwrap()[0].url, "http://[::1]:1");
    }

    #[test]
    fn refusals_name_the_flag() {
        let err = |r: &FleetRequest| {
            r.instances(&vec![1; r.layout().map(|l| l.len()).unwrap_or(1)])
                .unwrap_err()
                .to_string()
        };
        let mut r = req(Engine::Vllm);
        r.model = None;
        assert!(
            err(&r).starts_with("--model: --engine vllm needs"),
            "{}",
            err(&r)
        );
        let mut r = req(Engine::Vllm);
        r.gpus = Some(vec!["0".into()]);
        r.instances = Some(2);
        assert!(err(&r).starts_with("--instances:"));
        let mut r = req(Engine::Vllm);
        r.per_gpu = Some(2);
        assert!(err(&r).starts_with("--per-gpu: needs --gpus"));
        let mut r = req(Engine::Vllm);
        r.instances = Some(0);
        assert!(err(&r).starts_with("--instances: must be at least 1"));
        let r = req(Engine::Custom(Template::parse("s {port} {gpu}").unwrap()));
        assert!(err(&r).starts_with("--cmd: the template uses {gpu}"));
        let mut r = req(Engine::Custom(Template::parse("s {port} {model}").unwrap()));
        r.model = None;
        assert!(err(&r).starts_with("--model: the --cmd template uses {model}"));
    }
}
