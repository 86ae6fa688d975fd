import ACAI
import ACAIModels
import ACAITestSupport
import ACAITraining
import XCTest

/// A recorded step plan against the eager step it replays: the same losses, parameters and state over 20
/// steps of every model (bit for bit on the CPU device, within the op tolerances on OpenCL); new shapes or a
/// new model record a new plan; a step that reads the device cannot be recorded.
final class StepPlanTests: XCTestCase {
    /// One model trained through a `StepRecorder`, on inputs uploaded into the same buffers every step; each
    /// step's losses are copied (inside the step) into buffers read after it.
    final class Run {
        let device: RecordingDevice
        let recorder: StepRecorder
        let model: any Autoencoder
        let batch: Int
        var input: Tensor
        var labelIndex: Tensor
        var random: RandomStream
        var lossOutputs: [String: Tensor] = [:]

        init(_ kind: ModelKind, on base: any Device, replay: Bool, batch: Int, seed: UInt64) throws {
            device = RecordingDevice(base: base)
            recorder = StepRecorder(device: device, replay: replay)
            model = try makeModel(kind, config: ModelTests.tinyConfig(kind), seed: seed, on: device)
            self.batch = batch
            input = try Tensor.empty([batch, 8, 8, 1], on: device)
            labelIndex = try Tensor.empty([batch], on: device)
            random = RandomStream(seed: seed &+ 7)
        }

        func resize(batch: Int) throws {
            input = try Tensor.empty([batch, 8, 8, 1], on: device)
            labelIndex = try Tensor.empty([batch], on: device)
        }

        /// One step on `data`; returns its losses.
        func step(_ data: (images: [Float], labels: [Int])) throws -> [String: Float] {
            try device.upload(data.images, to: input.buffer)
            try device.upload(data.labels.map(Float.init), to: labelIndex.buffer)
            let input = input, labelIndex = labelIndex, model = model, base = device.base
            try recorder.step(model: model, shapes: [input.shape], optimizers: model.optimizers.map(\.adam),
                              random: &random) { random in
                let losses = try model.trainStep(input, labels: try labelIndex.oneHot(depth: 10), random: &random)
                for (name, loss) in losses {
                    if lossOutputs[name] == nil {
                        // Allocated on the base device: not part of the recording, kept by this run.
                        lossOutputs[name] = try Tensor.empty(loss.shape, on: base)
                    }
                    try loss.copy(into: lossOutputs[name]!)
                }
            }
            return try lossOutputs.mapValues { try $0.item() }
        }

        /// Every parameter, optimiser moment and state buffer, by checkpoint name.
        func state() throws -> [String: [Float]] {
            var out: [String: [Float]] = [:]
            for p in model.parameters { out["param/\(p.name)"] = try p.toArray() }
            for (name, adam) in model.optimizers {
                for (p, m) in zip(adam.parameters, adam.moments) {
                    out["adam/\(name)/\(p.name)/m"] = try m.m.toArray()
                    out["adam/\(name)/\(p.name)/v"] = try m.v.toArray()
                }
                out["adam/\(name)/step"] = [Float(adam.step)]
            }
            for (name, t) in model.buffers { out["buffer/\(name)"] = try t.toArray() }
            return out
        }
    }

    func batches(_ count: Int, size: Int, seed: UInt64) -> [(images: [Float], labels: [Int])] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in ModelTests.batch(size, rng: &rng) }
    }

    func compare(_ actual: [Float], _ expected: [Float], exact: Bool, _ context: String) {
        if exact {
            XCTAssertEqual(actual, expected, context)
        } else {
            assertClose(actual: actual, expected: expected.map(Double.init), atol: 1e-6, rtol: 1e-4, context: context)
        }
    }

    func testReplayedPlanEqualsEagerStepsForEveryModel() throws {
        let seed = TestRandom.seed(self)
        let data = batches(20, size: 8, seed: seed)
        try TestDevices.forEach { base in
            let exact = base.kind == .cpu
            for kind in ModelKind.allCases {
                let eager = try Run(kind, on: base, replay: false, batch: 8, seed: seed)
                let planned = try Run(kind, on: base, replay: true, batch: 8, seed: seed)
                for (i, b) in data.enumerated() {
                    let expected = try eager.step(b), actual = try planned.step(b)
                    XCTAssertEqual(actual.keys.sorted(), expected.keys.sorted())
                    for name in expected.keys.sorted() {
                        compare([actual[name] ?? .nan], [expected[name]!], exact: exact,
                                "\(kind) on \(base.id), step \(i + 1), \(name)")
                    }
                }
                XCTAssertEqual(planned.recorder.recordings, 1, "\(kind): one recording")
                XCTAssertEqual(planned.recorder.replayed, data.count - 1, "\(kind): every later step replayed")
                XCTAssertEqual(planned.random, eager.random, "\(kind): the random stream advances as the eager one")
                let expected = try eager.state(), actual = try planned.state()
                XCTAssertEqual(actual.keys.sorted(), expected.keys.sorted())
                for name in expected.keys.sorted() {
                    compare(actual[name] ?? [], expected[name]!, exact: exact, "\(kind) on \(base.id): \(name) after 20 steps")
                }
            }
        }
    }

    func testNewShapesOrModelsRecordNewPlans() throws {
        let seed = TestRandom.seed(self)
        let small = batches(3, size: 8, seed: seed), large = batches(3, size: 6, seed: seed &+ 1)
        let eager = try Run(.acai, on: TestDevices.cpu, replay: false, batch: 8, seed: seed)
        let planned = try Run(.acai, on: TestDevices.cpu, replay: true, batch: 8, seed: seed)
        for b in small { XCTAssertEqual(try planned.step(b), try eager.step(b)) }
        try eager.resize(batch: 6)
        try planned.resize(batch: 6)
        for b in large { XCTAssertEqual(try planned.step(b), try eager.step(b), "after the batch size changed") }
        XCTAssertEqual(planned.recorder.recordings, 2, "a new batch size records a new plan")
        XCTAssertEqual(planned.recorder.replayed, 4)
        XCTAssertEqual(try planned.state(), try eager.state())

        // Another model through the same recorder gets its own plan, not the first model's.
        let other = try makeModel(.ae, config: ModelTests.tinyConfig(.ae), seed: seed, on: planned.device)
        let x = try Tensor.empty([6, 8, 8, 1], on: planned.device)
        try planned.device.upload(large[0].images, to: x.buffer)
        var random = RandomStream(seed: 3)
        var before: [Float] = []
        try planned.recorder.step(model: other, shapes: [x.shape], optimizers: other.optimizers.map(\.adam),
                                  random: &random) { random in
            _ = try other.trainStep(x, labels: try Tensor.zeros([6, 10], on: planned.device), random: &random)
        }
        before = try other.parameters[0].toArray()
        XCTAssertEqual(planned.recorder.recordings, 3, "a new model records a new plan")
        XCTAssertNil(planned.recorder.plan(for: planned.model, shapes: [[6, 8, 8, 1]]),
                     "the plans of the model no longer trained are dropped")
        XCTAssertTrue(before.allSatisfy(\.isFinite))
    }

    func testAStepThatReadsTheDeviceCannotBeRecorded() throws {
        let device = RecordingDevice(base: TestDevices.cpu)
        let recorder = StepRecorder(device: device)
        let model = try makeModel(.ae, config: ModelTests.tinyConfig(.ae), seed: 1, on: device)
        let x = try Tensor.random([2, 8, 8, 1], .uniform, seed: 4, on: device)
        var random = RandomStream(seed: 1)
        XCTAssertThrowsError(try recorder.step(model: model, shapes: [x.shape], optimizers: [], random: &random) { random in
            _ = try model.trainStep(x, labels: try Tensor.zeros([2, 10], on: device), random: &random)["loss_ae"]!.item()
        }) { error in
            XCTAssertTrue("\(error)".contains("reads device values"), "\(error)")
        }
    }
}

/// The batched passes of ACAI (the decoder on [z; mixed], the critic on [x̂_α; blend]) against separate
/// passes: every layer works per sample, so outputs and parameter gradients agree within the op tolerances.
final class BatchedPassTests: XCTestCase {
    func testOneDecoderPassOnTwoBatchesEqualsTwoPasses() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            let shape = ConvNetShape(width: 8, colors: 1, depth: 4, latent: 3, latentWidth: 2)
            let decoder = try Decoder(name: "decoder", shape: shape, seed: seed, on: device)
            let critic = try Encoder(name: "critic", shape: shape, seed: seed &+ 1, on: device)
            let a = try Tensor.random([5, 2, 2, 3], .normal, seed: seed &+ 2, on: device)
            let b = try Tensor.random([5, 2, 2, 3], .normal, seed: seed &+ 3, on: device)
            let parameters = decoder.parameters + critic.parameters
            func loss(_ images: Tensor, _ critiqued: Tensor) throws -> Tensor {
                try images.squaredErrorMean() + critiqued.squaredErrorMean(perSampleMean: true)
            }
            // Separate passes: each half on its own, the losses summed.
            let da = try decoder(a), db = try decoder(b)
            let separate = try loss(da, try critic(da)) + loss(db, try critic(db))
            let separateGradients = try gradients(of: separate, wrt: parameters)
            // Batched: one pass of each network on both halves; the same loss over the halves.
            let dab = try decoder(Tensor.concat([a, b]))
            let cab = try critic(dab)
            let batched = try dab.squaredErrorMean(samples: 0..<5) + cab.squaredErrorMean(samples: 0..<5, perSampleMean: true)
                + dab.squaredErrorMean(samples: 5..<10) + cab.squaredErrorMean(samples: 5..<10, perSampleMean: true)
            let batchedGradients = try gradients(of: batched, wrt: parameters)
            assertClose(actual: try dab.toArray(), expected: (try da.toArray() + db.toArray()).map(Double.init),
                        atol: 1e-6, rtol: 1e-5, context: "decoder outputs on \(device.id)")
            assertClose(actual: [try batched.item()], expected: [Double(try separate.item())], atol: 1e-6, rtol: 1e-5,
                        context: "losses on \(device.id)")
            for (p, (g, h)) in zip(parameters, zip(batchedGradients, separateGradients)) {
                let expected = try h.toArray()
                let scale = (expected.map { Double($0 * $0) }.reduce(0, +) / Double(expected.count)).squareRoot()
                assertClose(actual: try g.toArray(), expected: expected.map(Double.init), atol: 1e-5 * max(scale, 1e-6),
                            rtol: 1e-4, context: "gradient of \(p.name) on \(device.id)")
            }
        }
    }

    /// ACAI's adversarial term reads the critic's scores of the first half of the batch only: its gradient
    /// runs back through the critic on those rows alone (`RowSupport`), and equals the gradient of a separate
    /// critic pass on that half.
    func testALossOnPartOfTheBatchDifferentiatesOnlyItsRows() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { base in
            // Everything through a recording device, to see the ops the backward pass ran.
            let device = RecordingDevice(base: base)
            let shape = ConvNetShape(width: 8, colors: 1, depth: 4, latent: 3, latentWidth: 2)
            let decoder = try Decoder(name: "decoder", shape: shape, seed: seed, on: device)
            let critic = try Encoder(name: "critic", shape: shape, seed: seed &+ 1, on: device)
            let a = try Tensor.random([5, 2, 2, 3], .normal, seed: seed &+ 2, on: device)
            let b = try Tensor.random([6, 2, 2, 3], .normal, seed: seed &+ 3, on: device)
            // Separate: the critic on the decoded first half alone.
            let separate = try critic(decoder(a)).squaredErrorMean(perSampleMean: true)
            let separateGradients = try gradients(of: separate, wrt: decoder.parameters)
            // Batched as in ACAI: the critic on [decoded a; decoded b, detached], the loss on the first 5 rows;
            // a second loss over the critic's parameters reads all rows.
            let recorder = StepRecorder(device: device)
            var batched: Tensor?, batchedGradients: [Tensor] = [], criticGradients: [Tensor] = []
            var random = RandomStream(seed: seed)
            try recorder.step(model: decoder.parameters[0], shapes: [a.shape], optimizers: [], random: &random) { _ in
                let decoded = try decoder(Tensor.concat([a, b]))
                let scores = try critic(Tensor.concat([decoded.slice(0..<5), decoded.slice(5..<11).detached()]))
                let loss = try scores.squaredErrorMean(samples: 0..<5, perSampleMean: true)
                batched = loss
                batchedGradients = try gradients(of: loss, wrt: decoder.parameters)
                criticGradients = try gradients(of: loss + scores.squaredErrorMean(samples: 5..<11, perSampleMean: true),
                                                wrt: critic.parameters)
            }
            assertClose(actual: [try batched!.item()], expected: [Double(try separate.item())], atol: 1e-6, rtol: 1e-5,
                        context: "losses on \(device.id)")
            for (p, (g, h)) in zip(decoder.parameters, zip(batchedGradients, separateGradients)) {
                let expected = try h.toArray()
                let scale = (expected.map { Double($0 * $0) }.reduce(0, +) / Double(expected.count)).squareRoot()
                assertClose(actual: try g.toArray(), expected: expected.map(Double.init), atol: 1e-5 * max(scale, 1e-6),
                            rtol: 1e-4, context: "gradient of \(p.name) on \(device.id)")
            }
            XCTAssertTrue(try criticGradients.allSatisfy { try $0.toArray().allSatisfy(\.isFinite) })
            // Towards the decoder every input and filter gradient ran on the 5 rows (the decoder's first layer
            // has no input gradient); towards the critic's parameters on all 11.
            let ops = try XCTUnwrap(recorder.plan(for: decoder.parameters[0], shapes: [a.shape])).ops
            var inputGradientBatches: [Int] = [], filterGradientBatches: [Int] = []
            for op in ops {
                if case let .conv2dBackwardInput(_, _, _, shape, _, _) = op { inputGradientBatches.append(shape.batch) }
                if case let .conv2dBackwardFilter(_, _, _, _, shape, _, _, _) = op { filterGradientBatches.append(shape.batch) }
            }
            let criticLayers = critic.parameters.count / 2, decoderLayers = decoder.parameters.count / 2
            XCTAssertEqual(inputGradientBatches.sorted(),
                           Array(repeating: 5, count: criticLayers + decoderLayers - 1)
                               + Array(repeating: 11, count: criticLayers - 1))
            XCTAssertEqual(filterGradientBatches.sorted(),
                           Array(repeating: 5, count: decoderLayers) + Array(repeating: 11, count: criticLayers))
        }
    }
}
