import ACAI
import ACAIModels
import Foundation

/// Checks that a data-parallel step computes what one process computes on the whole batch (`acai
/// check-distributed`, run under mpirun by the tests).
///
/// Every process holds a reference model trained on the whole global batch, as a single process would, and a
/// replica that trains its shard and all-reduces. Two phases, both through the recorded and replayed training
/// step that `acai train` uses:
/// - recomputed: before each step the replica takes the reference's whole state (parameters, moments,
///   buffers, random stream), so each step's all-reduced gradients (and VQ-VAE's EMA statistics, compared as
///   the updated buffers) are compared from equal parameters: Adam's first steps would otherwise amplify
///   last-bit differences of the summation order;
/// - free-running: both start equal and train `steps` steps on their own; their losses are compared.
public enum DataParallelCheck {
    public struct Report: Codable, Sendable {
        public var model: String
        public var device: String
        public var processes: Int
        public var batch: Int
        public var steps: Int
        /// Per step, per optimiser (and VQ-VAE buffer): ‖replica − reference‖ / ‖reference‖.
        public var gradientErrors: [[String: Double]]
        public var maxGradientError: Double
        /// Per step, per loss: the replica's (mean over the processes) and the reference's.
        public var freeRunningLosses: [[String: [Double]]]
        /// max |replica − reference| / max(|reference|, 1e-3) over the free-running losses.
        public var maxLossDifference: Double
    }

    public static func run(model kind: ModelKind, config: ModelConfig, batch: Int, steps: Int, seed: UInt64,
                           device: any Device, replicas: any Collective) throws -> Report {
        var options = TrainOptions(model: kind, config: config, out: "")
        options.batch = batch
        let shard = try options.shard(over: replicas)
        let data = LinesData(seed: seed)
        let imageSize = data.imageShape.reduce(1, *)

        func pair() throws -> (reference: TrainingStep, replica: TrainingStep) {
            func step() throws -> TrainingStep {
                let recording = RecordingDevice(base: device)
                let model = try makeModel(kind, config: config, seed: seed, on: recording)
                return TrainingStep(model: model, device: recording, replay: true, classes: config.classes)
            }
            let reference = try step(), replica = try step()
            replica.model.join(replicas: replicas)
            return (reference, replica)
        }
        func copyState(from reference: TrainingStep, to replica: TrainingStep) throws {
            try Checkpoint.copyState(from: reference.model, to: replica.model, what: "the reference model's state")
        }
        func runStep(_ step: TrainingStep, _ batch: (images: [Float], labels: [Int]), _ random: inout RandomStream,
                     global: Bool) throws -> [String: Double] {
            var (images, labels) = batch
            if global == false {
                images = shard.rows(of: images, rowSize: imageSize)
                labels = shard.rows(of: labels, rowSize: 1)
            }
            try step.run(images: images, labels: labels, imageShape: data.imageShape, random: &random)
            let (names, sums, _) = try step.collect(clear: true)
            return global ? sums : try replicas.mean(of: sums, names: names, what: "the step's losses")
        }
        func relativeError(_ a: [Float], _ b: [Float]) -> Double {
            var difference = 0.0, norm = 0.0
            for (x, y) in zip(a, b) {
                difference += Double(x - y) * Double(x - y)
                norm += Double(y) * Double(y)
            }
            return difference.squareRoot() / max(norm.squareRoot(), 1e-30)
        }
        func state(of step: TrainingStep) throws -> [String: [Float]] {
            var out: [String: [Float]] = [:]
            for (name, adam) in step.model.optimizers { out["\(name) gradients"] = try device.read(adam.store.gradients) }
            for (name, tensor) in step.model.buffers { out[name] = try tensor.toArray() }
            return out
        }

        // Recomputed from the reference's state at every step.
        var generator = data
        var (reference, replica) = try pair()
        var random = Trainer.trainingRandom(seed: seed)
        var gradientErrors: [[String: Double]] = []
        for _ in 0..<steps {
            try copyState(from: reference, to: replica)
            let batch = generator.next(options.batch)
            var replicaRandom = random
            replicaRandom.shard = shard
            _ = try runStep(reference, batch, &random, global: true)
            _ = try runStep(replica, batch, &replicaRandom, global: false)
            let expected = try state(of: reference), got = try state(of: replica)
            var errors: [String: Double] = [:]
            for (name, values) in expected { errors[name] = relativeError(got[name] ?? [], values) }
            gradientErrors.append(errors)
        }

        // Free-running from equal starts.
        generator = data
        (reference, replica) = try pair()
        try copyState(from: reference, to: replica)
        random = Trainer.trainingRandom(seed: seed)
        var replicaRandom = random
        replicaRandom.shard = shard
        var losses: [[String: [Double]]] = []
        var maxLoss = 0.0
        for _ in 0..<steps {
            let batch = generator.next(options.batch)
            let expected = try runStep(reference, batch, &random, global: true)
            let got = try runStep(replica, batch, &replicaRandom, global: false)
            var row: [String: [Double]] = [:]
            for (name, value) in expected {
                let mine = got[name] ?? .nan
                row[name] = [mine, value]
                let difference = abs(mine - value) / max(abs(value), 1e-3)
                maxLoss = max(maxLoss, difference.isNaN ? .infinity : difference)
            }
            losses.append(row)
        }
        let maxGradient = gradientErrors.flatMap(\.values).map { $0.isNaN ? Double.infinity : $0 }.max() ?? 0
        return Report(model: kind.rawValue, device: device.id, processes: replicas.size, batch: batch, steps: steps,
                      gradientErrors: gradientErrors, maxGradientError: maxGradient, freeRunningLosses: losses,
                      maxLossDifference: maxLoss)
    }
}
