import ACAI
import ACAIModels
import Foundation

/// `acai bench train`: the time of one training step (batch of lines uploaded, forward, both backward passes,
/// all Adam updates, losses summed on the device) on a device, median over timed windows after warm-up, run
/// as the trainer runs it: recorded once and replayed (or eagerly, every op from the model code, with
/// `replay` false). It also counts the kernel launches (op runs on the CPU) and the host waits of a step.
public enum TrainBenchmark {
    public struct Result: Sendable {
        public var device: String
        public var model: ModelKind
        public var batch: Int
        public var replay: Bool
        public var millisecondsPerStep: Double
        /// Kernels (OpenCL) or op implementations (CPU) per step, in steady state.
        public var launchesPerStep: Double
        /// Blocking host waits per step (reads, blocking writes, synchronisations), in steady state.
        public var synchronizationsPerStep: Double
        /// Host time spent handing one step to the device (recording or replaying it, uploads included), not
        /// waiting for it: on a GPU, the floor under the step time when the kernels are small.
        public var hostMillisecondsPerStep: Double
        /// Device memory the recorded plan holds (0 for eager steps).
        public var planBytes: Int
        /// Ops of the recorded plan by name, most frequent first (empty for eager steps).
        public var planOps: [(name: String, count: Int)]
        /// Processes of the data-parallel step (`batch` is the global batch) and this process's time in their
        /// collectives (all-reduces, waiting for the others included) per step.
        public var processes: Int = 1
        public var collectiveMillisecondsPerStep: Double = 0
        /// Bytes each process all-reduces per step: every optimiser's flat gradient buffer.
        public var allReduceBytesPerStep: Int = 0
        public var samplesPerSecond: Double { Double(batch) / (millisecondsPerStep / 1e3) }
    }

    /// With `replicas` of several processes (under mpirun) the step is data-parallel: each process trains its
    /// shard of the global `batch` and the gradients are all-reduced, as `acai train` does.
    public static func run(_ kind: ModelKind, on base: any Device, batch: Int = 64, replay: Bool = true,
                           warmup: Int = 3, windows: Int = 5, stepsPerWindow: Int = 5,
                           replicas: any Collective = SingleProcess(), localReplicas: [any Device] = []) throws -> Result {
        let replicated = try ReplicatedStep.make(kind, config: .lines32(kind), seed: 1, devices: [base] + localReplicas,
                                                 replay: replay, classes: 10)
        let step = replicated.primary, model = step.model
        var data = LinesData(seed: 1)
        var random = RandomStream(seed: 2)
        var options = TrainOptions(model: kind, config: .lines32(kind), out: "")
        options.batch = batch
        let shard = try options.shard(over: replicas)
        if replicas.isDistributed {
            model.join(replicas: replicas)
            random.shard = shard
        }
        // Batches are drawn up front so the timing covers the device work, not the line renderer.
        let batches = (0..<4).map { _ in data.next(batch, rows: shard.blocks) }
        func run(_ i: Int) throws {
            let b = batches[i % batches.count]
            try replicated.run(images: b.images, labels: b.labels, imageShape: [32, 32, 1], random: &random)
        }
        for i in 0..<warmup { try run(i) }
        _ = try replicated.collect(clear: true)
        var samples: [Double] = []
        var launches = 0, waits = 0
        var hostNanoseconds: UInt64 = 0
        try replicas.barrier(what: "the start of the timed steps")
        let collectiveBefore = replicas.collectiveSeconds + replicated.collectiveSeconds
        for w in 0..<windows {
            let start = monotonicNanoseconds()
            let launchesBefore = base.launchCount, waitsBefore = base.synchronizationCount
            for i in 0..<stepsPerWindow {
                let handed = monotonicNanoseconds()
                try run(w * stepsPerWindow + i)
                hostNanoseconds += monotonicNanoseconds() - handed
            }
            launches += base.launchCount - launchesBefore
            waits += base.synchronizationCount - waitsBefore
            _ = try replicated.collect(clear: true)  // the one wait of the window: what a progress line costs
            samples.append(Double(monotonicNanoseconds() - start) / 1e6 / Double(stepsPerWindow))
        }
        let collectiveSeconds = replicas.collectiveSeconds + replicated.collectiveSeconds - collectiveBefore
        let median = samples.sorted()[samples.count / 2]
        let steps = Double(windows * stepsPerWindow)
        let plan = step.recorder.plan(for: model, shapes: [[shard.localBatch / replicated.count, 32, 32, 1]])
        let opCounts = Dictionary(grouping: plan?.ops ?? [], by: \.name).map { (name: $0.key, count: $0.value.count) }
            .sorted { ($0.count, $1.name) > ($1.count, $0.name) }
        return Result(device: base.id, model: kind, batch: batch, replay: replay, millisecondsPerStep: median,
                      launchesPerStep: Double(launches) / steps, synchronizationsPerStep: Double(waits) / steps,
                      hostMillisecondsPerStep: Double(hostNanoseconds) / 1e6 / steps, planBytes: plan?.heldBytes ?? 0, planOps: opCounts,
                      processes: replicas.size * replicated.count, collectiveMillisecondsPerStep: collectiveSeconds * 1e3 / steps,
                      allReduceBytesPerStep: replicas.isDistributed || replicated.count > 1
                          ? model.optimizers.reduce(0) { $0 + $1.adam.store.count * MemoryLayout<Float>.stride } : 0)
    }
}
