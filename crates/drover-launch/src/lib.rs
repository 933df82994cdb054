//! Start, watch and stop a local fleet of inference servers: what the seed's
//! `run_multi_vllm.sh` did with `&` and `sleep`, with readiness, restarts and clean teardown.
//!
//! - [`plan`]: which instances to run — an [`Engine`] (vLLM, SGLang, llama-server, `drover serve`,
//!   `drover sim`, or a `--cmd` [`Template`]), GPUs, ports — into one [`InstanceSpec`] each, with
//!   its exact [`CommandLine`]. Pure apart from [`ports`] (binding to test or pick ports) and
//!   [`gpus`] (asking `nvidia-smi`).
//! - [`Fleet`]: runs the instances on a supervisor thread: each child in its own process group,
//!   output to `<log dir>/<name>.log`, ready once `/health` and `/v1/models` answer, restarted
//!   with [`Backoff`] when it dies after being ready, and stopped on [`Fleet::shutdown`] or drop
//!   (SIGTERM to each group, SIGKILL after the grace). What happens is reported as [`Event`]s.
//!
//! Processes are spawned without a shell: every argument reaches the engine as one `argv` entry,
//! whatever it contains.
//!
//! Why a dedicated thread: on Linux each child gets `PR_SET_PDEATHSIG` (SIGTERM) as a backstop
//! for a parent killed with SIGKILL, and the kernel sends it when the *thread* that forked the
//! child ends, not the process. The supervisor thread forks every child and outlives them all, so
//! the signal means "drover is gone" and never "a pool thread was retired".
#![deny(unsafe_code)] // `process::spawn` needs one `pre_exec`; nothing else may.

mod backoff;
mod command;
mod engine;
mod error;
mod event;
mod fleet;
pub mod gpus;
mod logs;
pub mod plan;
pub mod ports;
mod probe;
mod process;
mod supervise;
mod teardown;
mod template;

pub use backoff::Backoff;
pub use command::CommandLine;
pub use engine::Engine;
pub use error::{LaunchError, StartFailure};
pub use event::{Event, ExitInfo, StopOutcome};
pub use fleet::{Fleet, FleetSpec, Stopper, Teardown};
pub use plan::{FleetRequest, InstanceSpec, Slot};
pub use template::Template;
