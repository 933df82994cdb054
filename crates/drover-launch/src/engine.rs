//! The servers drover knows how to start, and the command line of each.

use std::path::PathBuf;

use crate::command::CommandLine;
use crate::template::{Template, Values, fill};

/// Which server each instance runs.
#[derive(Debug, Clone)]
pub enum Engine {
    /// `vllm serve MODEL --host H --port P`.
    Vllm,
    /// `python3 -m sglang.launch_server --model-path MODEL --host H --port P`.
    Sglang,
    /// llama.cpp's `llama-server -m MODEL --host H --port P`.
    LlamaServer,
    /// `drover serve [--model MODEL] --host H --port P`, through this drover executable.
    Drover {
        /// The drover executable.
        exe: PathBuf,
    },
    /// `drover sim --ports P --host H [--model MODEL]`, through this drover executable.
    Sim {
        /// The drover executable.
        exe: PathBuf,
    },
    /// Anything else, from a `--cmd` template.
    Custom(Template),
}

impl Engine {
    /// Short name for messages and log files: `vllm`, `sglang`, `llama-server`, `drover`,
    /// `sim`, or the file name of a template's program.
    pub fn name(&self) -> String {
        match self {
            Engine::Vllm => "vllm".into(),
            Engine::Sglang => "sglang".into(),
            Engine::LlamaServer => "llama-server".into(),
            Engine::Drover { .. } => "drover".into(),
            Engine::Sim { .. } => "sim".into(),
            Engine::Custom(t) => {
                let file = t.program().rsplit('/').next().unwrap_or_default();
                let clean: String = file
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                if clean.is_empty() || clean.starts_with('.') {
                    "cmd".into()
                } else {
                    clean
                }
            }
        }
    }

    /// Whether the engine cannot start without `--model`.
    pub fn needs_model(&self) -> bool {
        match self {
            Engine::Vllm | Engine::Sglang | Engine::LlamaServer => true,
            Engine::Drover { .. } | Engine::Sim { .. } => false,
            Engine::Custom(t) => t.uses("model"),
        }
    }

    /// Whether, with neither `--gpus` nor `--instances`, the fleet is one instance per GPU
    /// (the seed's layout) rather than a single instance.
    pub fn one_per_gpu_by_default(&self) -> bool {
        matches!(self, Engine::Vllm | Engine::Sglang)
    }

    /// The command for one instance. `extra` (the arguments after `--`) is appended, with the
    /// same placeholders filled in as in a template.
    pub(crate) fn command(&self, v: &Values<'_>, extra: &[String]) -> CommandLine {
        let (host, port) = (v.host.to_string(), v.port.to_string());
        let model = v.model.map(str::to_string);
        let cmd = match self {
            Engine::Vllm => CommandLine::new("vllm")
                .args(["serve".to_string()])
                .args(model)
                .args(["--host".to_string(), host, "--port".to_string(), port]),
            Engine::Sglang => CommandLine::new("python3")
                .args(["-m", "sglang.launch_server"])
                .args(
                    model
                        .into_iter()
                        .flat_map(|m| ["--model-path".to_string(), m]),
                )
                .args(["--host".to_string(), host, "--port".to_string(), port]),
            Engine::LlamaServer => CommandLine::new("llama-server")
                .args(model.into_iter().flat_map(|m| ["-m".to_string(), m]))
                .args(["--host".to_string(), host, "--port".to_string(), port]),
            Engine::Drover { exe } => CommandLine::new(exe.clone())
                .args(["serve".to_string()])
                .args(model.into_iter().flat_map(|m| ["--model".to_string(), m]))
                .args(["--host".to_string(), host, "--port".to_string(), port]),
            Engine::Sim { exe } => CommandLine::new(exe.clone())
                .args([
                    "sim".to_string(),
                    "--ports".to_string(),
                    port,
                    "--host".to_string(),
                    host,
                ])
                .args(model.into_iter().flat_map(|m| ["--model".to_string(), m])),
            Engine::Custom(t) => {
                let mut words = t.render(v).into_iter();
                let program = words.next().unwrap_or_default();
                CommandLine::new(program).args(words)
            }
        };
        let cmd = cmd.args(extra.iter().map(|a| fill(a, v)));
        match v.gpu {
            Some(gpu) => cmd.env("CUDA_VISIBLE_DEVICES", gpu),
            None => cmd,
        }
    }

    /// What to do when the program cannot be executed.
    pub(crate) fn missing_hint(&self) -> String {
        match self {
            Engine::Vllm => {
                "is vLLM installed in this environment? `pip install vllm` puts `vllm` on PATH; \
                 or start the server another way with --cmd"
                    .into()
            }
            Engine::Sglang => {
                "--engine sglang runs `python3 -m sglang.launch_server`: put a python3 with \
                 SGLang installed on PATH (activate its environment)"
                    .into()
            }
            Engine::LlamaServer => {
                "put llama.cpp's `llama-server` on PATH, or name its path with --cmd".into()
            }
            Engine::Drover { exe } | Engine::Sim { exe } => {
                format!(
                    "the drover executable {} could not be run; was it replaced while running?",
                    exe.display()
                )
            }
            Engine::Custom(t) => format!(
                "check the first word of --cmd, {:?}: a program on PATH or a path",
                t.program()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v<'a>(model: Option<&'a str>, gpu: Option<&'a str>) -> Values<'a> {
        Values {
            port: 8003,
            gpu,
            model,
            host: "127.0.0.1",
            index: 2,
        }
    }

    fn words(c: &CommandLine) -> Vec<String> {
        std::iter::once(c.program.to_string_lossy().into_owned())
            .chain(c.args.iter().cloned())
            .collect()
    }

    #[test]
    fn each_engine_gets_its_documented_command_line() {
        let extra = ["--max-model-len".to_string(), "4096".to_string()];
        let m = Some("org/m; rm -rf x");
        let c = Engine::Vllm.command(&v(m, Some("2")), &extra);
        assert_eq!(
            words(&c),
            [
                "vllm",
                "serve",
                "org/m; rm -rf x",
                "--host",
                "127.0.0.1",
                "--port",
                "8003",
                "--max-model-len",
                "4096"
            ]
        );
        assert_eq!(
            c.env,
            [("CUDA_VISIBLE_DEVICES".to_string(), "2".to_string())]
        );
        assert_eq!(
            words(&Engine::Sglang.command(&v(m, None), &[])),
            [
                "python3",
                "-m",
                "sglang.launch_server",
                "--model-path",
                "org/m; rm -rf x",
                "--host",
                "127.0.0.1",
                "--port",
                "8003"
            ]
        );
        assert_eq!(
            words(&Engine::LlamaServer.command(&v(Some("/m.gguf"), None), &[])),
            [
                "llama-server",
                "-m",
                "/m.gguf",
                "--host",
                "127.0.0.1",
                "--port",
                "8003"
            ]
        );
        let exe = PathBuf::from("/bin/drover");
        assert_eq!(
            words(
                &Engine::Drover { exe: exe.clone() }
                    .command(&v(None, None), &["--threads".into(), "1".into()])
            ),
            [
                "/bin/drover",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "8003",
                "--threads",
                "1"
            ]
        );
        assert_eq!(
            words(&Engine::Drover { exe: exe.clone() }.command(&v(Some("/m.gguf"), None), &[])),
            [
                "/bin/drover",
                "serve",
                "--model",
                "/m.gguf",
                "--host",
                "127.0.0.1",
                "--port",
                "8003"
            ]
        );
        let sim = Engine::Sim { exe }
            .command(&v(Some("m"), None), &["--preset".into(), "instant".into()]);
        assert_eq!(
            words(&sim),
            [
                "/bin/drover",
                "sim",
                "--ports",
                "8003",
                "--host",
                "127.0.0.1",
                "--model",
                "m",
                "--preset",
                "instant"
            ]
        );
        assert!(sim.env.is_empty(), "no GPU, no CUDA_VISIBLE_DEVICES");
    }

    #[test]
    fn templates_and_extra_arguments_get_placeholders() {
        let t = Template::parse("/opt/srv --listen {host}:{port} --dev {gpu}").unwrap();
        let e = Engine::Custom(t);
        assert_eq!(e.name(), "srv");
        assert!(!e.needs_model());
        let c = e.command(&v(None, Some("0,1")), &["--name".into(), "i{index}".into()]);
        assert_eq!(
            words(&c),
            [
                "/opt/srv",
                "--listen",
                "127.0.0.1:8003",
                "--dev",
                "0,1",
                "--name",
                "i2"
            ]
        );
        assert_eq!(
            c.env,
            [("CUDA_VISIBLE_DEVICES".to_string(), "0,1".to_string())]
        );
        assert!(Engine::Custom(Template::parse("s {port} {model}").unwrap()).needs_model());
        assert_eq!(
            Engine::Custom(Template::parse("'a b!' {port}").unwrap()).name(),
            "a_b_"
        );
    }
}
