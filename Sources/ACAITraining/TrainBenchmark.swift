import ACAI
import ACAIModels
import Foundation

/// `acai bench train`: the time of one training step (batch of lines, forward, both backward passes, all
/// Adam updates, losses read back once per step) on a device, median over timed windows after warm-up.
public enum TrainBenchmark {
    public struct Result: Sendable {
        public var device: String
        public var model: ModelKind
        public var batch: Int
        public var millisecondsPerStep: Double
        public var samplesPerSecond: Double { Double(batch) / (millisecondsPerStep / 1e3) }
    }

    public static func run(_ kind: ModelKind, on device: any Device, batch: Int = 64, warmup: Int = 3, windows: Int = 5,
                           stepsPerWindow: Int = 5) throws -> Result {
        let model = try makeModel(kind, config: .lines32(kind), seed: 1, on: device)
        var data = LinesData(seed: 1)
        var random = RandomStream(seed: 2)
        // Batches are drawn up front so the timing covers the device work, not the line renderer.
        let batches = (0..<4).map { _ in data.next(batch) }
        func step(_ i: Int) throws {
            let b = batches[i % batches.count]
            let x = try Tensor(shape: [batch, 32, 32, 1], values: b.images, on: device)
            let labels = try Tensor(shape: [batch], values: b.labels.map(Float.init), on: device).oneHot(depth: 10)
            let losses = try model.trainStep(x, labels: labels, random: &random)
            _ = try losses.values.first?.item()  // one read back per step synchronises the device
        }
        for i in 0..<warmup { try step(i) }
        var samples: [Double] = []
        for w in 0..<windows {
            let start = monotonicNanoseconds()
            for i in 0..<stepsPerWindow { try step(w * stepsPerWindow + i) }
            try device.synchronize()
            samples.append(Double(monotonicNanoseconds() - start) / 1e6 / Double(stepsPerWindow))
        }
        let median = samples.sorted()[samples.count / 2]
        return Result(device: device.id, model: kind, batch: batch, millisecondsPerStep: median)
    }
}
