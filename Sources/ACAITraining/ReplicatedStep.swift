import ACAI
import ACAIModels
import Foundation

/// The training step of one process, on one replica of the model or on several at once (`--replicas N`): each
/// replica lives on its own device (a single-threaded CPU device) and runs on its own thread, trains its shard of
/// the batch, and the replicas average their gradients through a `ThreadCollective`, exactly as the processes of
/// `mpirun` do through MPI (same shards, same random rows, same VQ-VAE gathers). On a CPU with few cores this is
/// faster than one replica whose every op is split over the cores: no fork/join per op, and each core works
/// through a half-size batch.
///
/// Replica 0 is the trainer's model (evaluated, checkpointed, restored into); the others copy its whole state
/// before their first step and stay equal to it, step after step (each applies the same averaged gradients).
final class ReplicatedStep {
    let steps: [TrainingStep]
    private let members: [ThreadCollective.Member]
    private var synchronized = false

    /// `others`: the models of replicas 1..<n, each built (with the same kind, config and seed) on its own
    /// recording device over its own base device.
    init(primary: TrainingStep, others: [TrainingStep]) {
        steps = [primary] + others
        members = others.isEmpty ? [] : ThreadCollective.members(others.count + 1)
        for (step, member) in zip(steps, members) { step.model.join(replicas: member) }
    }

    var primary: TrainingStep { steps[0] }
    var count: Int { steps.count }
    /// Seconds replica 0 spent in the replicas' collectives.
    var collectiveSeconds: Double { members.first?.collectiveSeconds ?? 0 }

    /// One step on the global batch `images`/`labels`; `random` moves as for one replica.
    func run(images: [Float], labels: [Int], imageShape: [Int], random: inout RandomStream) throws {
        guard steps.count > 1 else {
            return try primary.run(images: images, labels: labels, imageShape: imageShape, random: &random)
        }
        if !synchronized {
            for step in steps.dropFirst() { try Checkpoint.copyState(from: primary.model, to: step.model, what: "replica 0's state") }
            synchronized = true
        }
        let n = steps.count
        let shards = try Self.shards(batch: labels.count, count: n, model: primary.model.kind)
        let rowSize = imageShape.reduce(1, *)
        let outcome = ReplicaOutcomes(count: n, random: random, shards: shards)
        let steps = self.steps, members = self.members
        func work(_ r: Int) {
            do {
                var stream = outcome.randoms[r]
                try steps[r].run(images: shards[r].rows(of: images, rowSize: rowSize), labels: shards[r].rows(of: labels, rowSize: 1),
                                 imageShape: imageShape, random: &stream)
                outcome.randoms[r] = stream
            } catch {
                outcome.errors[r] = error
                members[r].group.fail("replica \(r): \(error)")
            }
        }
        // Replicas 1..<n on threads of their own (each waits for the others in every collective, so they must
        // run at once: a thread pool that ran them one after another would deadlock), replica 0 here.
        let done = DispatchSemaphore(value: 0)
        // Each replica's thread touches only its own step, device and outcome slot.
        let task = UncheckedSendable(work)
        for r in 1..<n {
            let thread = Thread { task.value(r); done.signal() }
            thread.stackSize = 16 << 20
            thread.start()
        }
        work(0)
        for _ in 1..<n { done.wait() }
        // The replica whose own step failed, before those released by its failure.
        if let error = outcome.errors.compactMap({ $0 }).first(where: { !($0 is CollectiveError) })
            ?? outcome.errors.compactMap({ $0 }).first {
            throw error
        }
        var next = outcome.randoms[0]
        next.shard = random.shard
        random = next
    }

    /// The loss sums since last cleared, averaged over the replicas (each replica's are means over its shard).
    func collect(clear: Bool) throws -> (names: [String], sums: [String: Double], steps: Int) {
        var (names, sums, count) = try primary.collect(clear: clear)
        guard steps.count > 1 else { return (names, sums, count) }
        for step in steps.dropFirst() {
            let (_, more, _) = try step.collect(clear: clear)
            for (name, value) in more { sums[name, default: 0] += value }
        }
        for name in names { sums[name] = (sums[name] ?? 0) / Double(steps.count) }
        return (names, sums, count)
    }
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// What each replica's thread leaves: its random stream after the step and its error.
private final class ReplicaOutcomes: @unchecked Sendable {
    var randoms: [RandomStream]
    var errors: [(any Error)?]

    init(count: Int, random: RandomStream, shards: [BatchShard]) {
        randoms = shards.map { shard in
            var stream = random
            stream.shard = shard
            return stream
        }
        errors = [(any Error)?](repeating: nil, count: count)
    }
}

extension ReplicatedStep {
    /// The replicas' shards of a batch; refuses a batch they cannot share (ACAI: each an even share, since it
    /// pairs mirrored samples).
    static func shards(batch: Int, count: Int, model: ModelKind) throws -> [BatchShard] {
        guard batch % count == 0, model != .acai || batch % (2 * count) == 0 else {
            throw TrainingError.badOption("--batch \(batch) does not divide among \(count) replicas"
                                          + (model == .acai ? " with an even share each (ACAI pairs mirrored samples)" : ""))
        }
        return try (0..<count).map { try BatchShard(rank: $0, ranks: count, globalBatch: batch) }
    }

    /// A step over replicas of `kind` on `devices` (replica 0 on the first): each model built with the same
    /// config and seed on its own recording device.
    static func make(_ kind: ModelKind, config: ModelConfig, seed: UInt64, devices: [any Device], replay: Bool,
                     classes: Int) throws -> ReplicatedStep {
        let steps = try devices.map { base -> TrainingStep in
            let device = (base as? RecordingDevice) ?? RecordingDevice(base: base)
            let model = try makeModel(kind, config: config, seed: seed, on: device)
            return TrainingStep(model: model, device: device, replay: replay, classes: classes)
        }
        return ReplicatedStep(primary: steps[0], others: Array(steps.dropFirst()))
    }
}
