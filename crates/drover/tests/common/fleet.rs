//! An in-process `drover sim` fleet on port 0, on its own runtime, for tests that drive the
//! real `drover` binary against it.
#![allow(dead_code)]

use drover_sim::{Fleet, SimConfig};

/// A running simulated fleet; shut down when dropped.
pub struct SimFleet {
    pub fleet: Option<Fleet>,
    rt: tokio::runtime::Runtime,
}

impl SimFleet {
    /// Starts `n` instances of `config` (seeds differ per instance).
    pub fn start(n: usize, config: SimConfig) -> SimFleet {
        Self::start_each(
            (0..n)
                .map(|i| {
                    let mut c = config.clone();
                    c.seed = config.seed + i as u64;
                    c
                })
                .collect(),
        )
    }

    /// Starts one instance per config.
    pub fn start_each(configs: Vec<SimConfig>) -> SimFleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ports = vec![0; configs.len()];
        let fleet = rt
            .block_on(Fleet::start("127.0.0.1", &ports, configs))
            .expect("sim fleet starts");
        SimFleet {
            fleet: Some(fleet),
            rt,
        }
    }

    /// `-b` value for the fleet.
    pub fn backends(&self) -> String {
        self.fleet.as_ref().unwrap().urls().join(",")
    }

    /// Kills instance `i` (listener closed, connections reset).
    pub fn kill(&self, i: usize) {
        let _guard = self.rt.enter();
        self.fleet.as_ref().unwrap().kill(i);
    }

    /// Revives instance `i` on its port.
    pub fn revive(&self, i: usize) {
        let _guard = self.rt.enter();
        self.fleet.as_ref().unwrap().revive(i);
    }

    /// Stalls (or un-stalls) instance `i`.
    pub fn stall(&self, i: usize, on: bool) {
        let _guard = self.rt.enter();
        self.fleet.as_ref().unwrap().stall(i, on);
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        if let Some(f) = self.fleet.take() {
            self.rt.block_on(f.shutdown());
        }
    }
}

/// The 8B/H100 preset made small and slow enough that a few thousand short tasks take seconds.
pub fn slow_preset(time_scale: f64) -> SimConfig {
    let mut c = SimConfig::preset("llama-3.1-8b-h100").unwrap();
    c.time_scale = time_scale;
    c.params.max_num_seqs = 128;
    c
}
