//! Data-parallel training on burn's collective engine (`burn-collective`): the devices of one
//! process and the processes of several nodes join one collective, and each optimizer step
//! averages the ranks' gradients with its all-reduce (see [`super::replicas`] for what the
//! trainer asks of it).
//!
//! Node rank 0 hosts burn's global orchestrator at the coordinator's address; every node opens
//! burn's tensor data service at the coordinator's port plus one plus its node rank, where the
//! other nodes fetch their parts of the ring all-reduce. burn's calls wait forever for a peer
//! that never comes (it retries the connection every second): each call here has a timeout, so
//! a rank that died or a node that cannot connect is an error on the others, not a hang.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};
use burn_communication::Address;

use super::replicas::{flatten, unflatten, Ranks, Replicas};
use super::step::StepGradients;
use super::trainable::Trainable;
use crate::error::{Error, Result};
use crate::fused::FusedAutodiff;

/// Where this process stands among the ranks of a run.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Processes (machines) taking part, each with `devices` devices.
    pub nodes: usize,
    /// This process, `0..nodes`; node 0 hosts the coordinator.
    pub node_rank: usize,
    /// The coordinator's `HOST:PORT` (needed with more than one node).
    pub coordinator: Option<String>,
    /// Devices (ranks) in each process.
    pub devices: usize,
    /// How long a collective call waits for the other ranks before it fails.
    pub timeout: Duration,
}

impl Topology {
    /// Ranks in all.
    pub fn world(&self) -> usize {
        self.nodes * self.devices
    }

    /// Refuses a topology that cannot work, naming the flag at fault.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.nodes == 0 || self.devices == 0 {
            return bad("`--nodes` and the number of `--devices` must be at least 1".into());
        }
        if self.node_rank >= self.nodes {
            return bad(format!(
                "`--node-rank` {} is not below `--nodes` {}",
                self.node_rank, self.nodes
            ));
        }
        if self.nodes > 1 {
            let (_, port) = self.coordinator_parts()?;
            if usize::from(port) + self.nodes > usize::from(u16::MAX) {
                return bad(format!(
                    "`--coordinator` port {port}: nodes use the ports above it, up to {}",
                    usize::from(port) + self.nodes
                ));
            }
        }
        Ok(())
    }

    fn coordinator_parts(&self) -> Result<(String, u16)> {
        let bad = |m: &str| Error::Invalid(format!("`--coordinator`: {m}"));
        let text = self
            .coordinator
            .as_deref()
            .ok_or_else(|| bad("needed with more than one node (HOST:PORT)"))?;
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| bad(&format!("`{text}` is not HOST:PORT")))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| bad(&format!("`{port}` is not a port number")))?;
        Ok((host.to_string(), port))
    }

    /// burn's config of the collective, for this node.
    fn collective_config(&self) -> Result<CollectiveConfig> {
        let config = CollectiveConfig::default().with_num_devices(self.devices);
        if self.nodes == 1 {
            return Ok(config);
        }
        let (host, port) = self.coordinator_parts()?;
        let data_port = port + 1 + self.node_rank as u16;
        let ip = local_ip_towards(&host, port)?;
        let address = |s: String| Address::from_str(&s).expect("an address is any string");
        Ok(config
            .with_num_nodes(self.nodes as u32)
            .with_global_address(address(format!("ws://{host}:{port}")))
            .with_node_address(address(format!("ws://{ip}:{data_port}")))
            .with_data_service_port(data_port))
    }
}

/// The address of this machine that the coordinator's machine reaches: the one its route to
/// the coordinator leaves from (a UDP "connection" sends nothing).
fn local_ip_towards(host: &str, port: u16) -> Result<String> {
    let bad = |m: String| Error::Invalid(format!("`--coordinator` {host}:{port}: {m}"));
    let target: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address".into()))?;
    if target.ip().is_loopback() {
        return Ok(target.ip().to_string());
    }
    let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| bad(e.to_string()))?;
    socket.connect(target).map_err(|e| bad(e.to_string()))?;
    let ip = socket.local_addr().map_err(|e| bad(e.to_string()))?.ip();
    Ok(ip.to_string())
}

/// One rank's membership of the collective.
pub struct Collective<B: FusedAutodiff> {
    peer: PeerId,
    rank: usize,
    world: usize,
    timeout: Duration,
    device: B::Device,
}

impl<B: FusedAutodiff> Collective<B> {
    /// Joins the collective as device `local` of this node (rank `node_rank * devices +
    /// local`), once every rank has joined; node 0's first device starts the coordinator.
    pub fn join(topology: &Topology, local: usize, device: B::Device) -> Result<Self> {
        topology.check()?;
        let rank = topology.node_rank * topology.devices + local;
        let config = topology.collective_config()?;
        if topology.nodes > 1 && topology.node_rank == 0 && local == 0 {
            let (_, port) = topology.coordinator_parts()?;
            start_coordinator(port)?;
        }
        let me = Self {
            peer: PeerId::from(rank),
            rank,
            world: topology.world(),
            timeout: topology.timeout,
            device: device.clone(),
        };
        let peer = me.peer;
        me.wait("joining the other ranks", move || {
            burn_collective::register::<B::InnerBackend>(peer, device, config)
        })
        .map_err(|e| match e.to_string().contains("RegisterParamsMismatch") {
            true => Error::Invalid(format!(
                "rank {rank}: the processes disagree on `--nodes` (this one has {})",
                topology.nodes
            )),
            false => e,
        })?;
        me.check_world()?;
        Ok(me)
    }

    /// Refuses a run whose processes count another world size than this one (other
    /// `--devices` counts): the ranks that joined, counted by a sum of fixed size.
    fn check_world(&self) -> Result<()> {
        let ones =
            Tensor::<B::InnerBackend, 1>::from_floats([1.0, self.world as f32], &self.device);
        let sums = self.all_reduce(ones, ReduceOperation::Sum, "counting the ranks")?;
        let sums: Vec<f32> = sums.into_data().iter::<f32>().collect();
        let world = self.world as f32;
        if sums[0] != world || sums[1] != world * world {
            return Err(Error::Invalid(format!(
                "rank {}: {} ranks joined, and this process counts {} (`--nodes` x \
                 `--devices`): give every process as many `--devices`",
                self.rank, sums[0], self.world
            )));
        }
        Ok(())
    }

    /// [`Replicas::agree`]: each rank's value goes into its own row of a table that the
    /// all-reduce sums, a gather built on the all-reduce.
    fn check_same(&self, what: &str, fingerprint: u64) -> Result<()> {
        const COLS: usize = 5;
        let mut table = vec![0f32; self.world * COLS];
        let row = &mut table[self.rank * COLS..(self.rank + 1) * COLS];
        row[0] = 1.0;
        // 16-bit pieces: exact in f32, and a sum with zeros leaves them exact.
        for (i, cell) in row[1..].iter_mut().enumerate() {
            *cell = ((fingerprint >> (16 * i)) & 0xffff) as f32;
        }
        let mine: Vec<f32> = row.to_vec();
        let tensor = Tensor::<B::InnerBackend, 1>::from_floats(table.as_slice(), &self.device);
        let summed = self.all_reduce(tensor, ReduceOperation::Sum, "comparing the ranks")?;
        let summed: Vec<f32> = summed.into_data().iter::<f32>().collect();
        for (rank, row) in summed.chunks(COLS).enumerate() {
            if row[0] != 1.0 {
                return Err(Error::Invalid(format!(
                    "rank {rank} joined {} times: give each process its own `--node-rank`",
                    row[0]
                )));
            }
            if row[1..] != mine[1..] {
                return Err(Error::Invalid(format!(
                    "rank {rank} has another {what} than rank {}: every rank needs the same",
                    self.rank
                )));
            }
        }
        Ok(())
    }

    /// Leaves the collective (at the end of a run; an error is only worth a warning then).
    /// At most 5 s: when node 0 has exited first, burn's worker on the others panics on the
    /// closed connection to the orchestrator (burn-collective 0.21.0, `global/node/worker.rs`
    /// line 243) and the call would never return.
    pub fn leave(mut self) -> Result<()> {
        self.timeout = self.timeout.min(Duration::from_secs(5));
        let peer = self.peer;
        self.wait("leaving the collective", move || {
            burn_collective::finish_collective::<B::InnerBackend>(peer)
        })
    }

    fn all_reduce(
        &self,
        tensor: Tensor<B::InnerBackend, 1>,
        op: ReduceOperation,
        what: &str,
    ) -> Result<Tensor<B::InnerBackend, 1>> {
        let peer = self.peer;
        let primitive = tensor.into_primitive().tensor();
        let out = self.wait(what, move || {
            burn_collective::all_reduce::<B::InnerBackend>(peer, primitive, op)
        })?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }

    /// Runs the blocking collective call `call` on its own thread and waits at most the
    /// timeout for it (a call left waiting for a dead rank is abandoned with its thread).
    fn wait<T: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce() -> std::result::Result<T, burn_collective::CollectiveError> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call());
        });
        let fail = |m: String| Error::Invalid(format!("rank {}: {what}: {m}", self.rank));
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(fail(format!(
                "burn's collective failed ({e:?}): a rank exited, or cannot reach the others"
            ))),
            Err(_) => Err(fail(format!(
                "no answer from the other ranks within {} s: a rank exited, or cannot reach the \
                 coordinator",
                self.timeout.as_secs()
            ))),
        }
    }
}

impl<B: FusedAutodiff> Ranks for Collective<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn sum(&self, values: &[f32]) -> Result<Vec<f32>> {
        let tensor = Tensor::<B::InnerBackend, 1>::from_floats(values, &self.device);
        let summed = self.all_reduce(tensor, ReduceOperation::Sum, "gathering the evaluation")?;
        Ok(summed.into_data().iter::<f32>().collect())
    }
}

impl<B: FusedAutodiff> Replicas<B> for Collective<B> {
    fn agree(&self, what: &str, value: u64) -> Result<()> {
        self.check_same(what, value)
    }

    fn all_reduce(
        &self,
        trainable: &Trainable<B>,
        grads: &mut StepGradients,
        sums: &mut [f64],
    ) -> Result<()> {
        // The sums ride with the gradients, averaged too: times the world size they are sums.
        let (flat, layout) = flatten(trainable, grads, sums, &self.device);
        let flat = self.all_reduce(flat, ReduceOperation::Mean, "averaging the gradients")?;
        let means = unflatten(trainable, grads, flat, layout);
        for (s, m) in sums.iter_mut().zip(means) {
            *s = m * self.world as f64;
        }
        Ok(())
    }
}

/// Starts burn's global orchestrator on `port` (all interfaces), on a thread of its own; a port
/// already taken is an error now rather than a timeout later.
fn start_coordinator(port: u16) -> Result<()> {
    std::net::TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        Error::Invalid(format!(
            "`--coordinator` port {port}: cannot listen on it ({e})"
        ))
    })?;
    std::thread::Builder::new()
        .name("collective-coordinator".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(burn_collective::start_global_orchestrator(port)),
                Err(e) => eprintln!("error: the coordinator's runtime: {e}"),
            }
        })
        .map_err(|e| Error::Invalid(format!("starting the coordinator: {e}")))?;
    Ok(())
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use burn::backend::Autodiff;

    use super::*;
    use crate::backend::Cpu;

    type B = Autodiff<Cpu>;

    fn two_devices(timeout_s: u64) -> Topology {
        Topology {
            nodes: 1,
            node_rank: 0,
            coordinator: None,
            devices: 2,
            timeout: Duration::from_secs(timeout_s),
        }
    }

    /// burn's collective server is one per process and backend: the cases run in turn, each
    /// from a reset server.
    #[test]
    fn ranks_missing_gone_or_at_odds_are_errors_within_the_timeout() {
        // A device that never joins.
        burn_collective::reset_collective::<Cpu>();
        let started = std::time::Instant::now();
        let e = Collective::<B>::join(&two_devices(2), 0, Default::default())
            .err()
            .expect("a missing rank is an error");
        assert!(
            e.to_string()
                .contains("no answer from the other ranks within 2 s"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));

        // Two ranks with different configs: both refuse.
        burn_collective::reset_collective::<Cpu>();
        let results: Vec<String> = std::thread::scope(|s| {
            let ranks: Vec<_> = (0..2)
                .map(|local| {
                    s.spawn(move || {
                        let c = Collective::<B>::join(&two_devices(20), local, Default::default())?;
                        c.agree("run config", 7 + local as u64)
                    })
                })
                .collect();
            ranks
                .into_iter()
                .map(|h| h.join().unwrap().expect_err("refused").to_string())
                .collect()
        });
        for e in &results {
            assert!(e.contains("has another run config"), "{e}");
        }

        // A rank that leaves the run: the other's next exchange fails within the timeout.
        burn_collective::reset_collective::<Cpu>();
        let started = std::time::Instant::now();
        let result = std::thread::scope(|s| {
            let gone = s.spawn(|| Collective::<B>::join(&two_devices(3), 1, Default::default()));
            let c = Collective::<B>::join(&two_devices(3), 0, Default::default())?;
            assert!(gone.join().unwrap().is_ok());
            c.agree("step", 1)
        });
        let e = result.expect_err("a gone rank is an error");
        assert!(
            e.to_string()
                .contains("rank 0: comparing the ranks: no answer"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(15));
        burn_collective::reset_collective::<Cpu>();
    }
}
