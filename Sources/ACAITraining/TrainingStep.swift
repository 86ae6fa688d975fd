import ACAI
import ACAIModels

/// One training step as the trainer and `acai bench train` run it: the batch is uploaded without waiting
/// into the same input buffers every step, the model's step is recorded once and replayed (`StepRecorder`),
/// and the losses are summed on the device (`LossAccumulator`), read back only when asked.
final class TrainingStep {
    let model: any Autoencoder
    let device: RecordingDevice
    let recorder: StepRecorder
    let classes: Int
    private var input: Tensor?
    private var labelIndex: Tensor?
    private(set) var accumulator: LossAccumulator?
    private let optimizers: [Adam]

    init(model: any Autoencoder, device: RecordingDevice, replay: Bool, classes: Int) {
        self.model = model
        self.device = device
        self.recorder = StepRecorder(device: device, replay: replay)
        self.classes = classes
        self.optimizers = model.optimizers.map(\.adam)
    }

    /// Trains one step on `images` ([labels.count] + imageShape values) and `labels`.
    func run(images: [Float], labels: [Int], imageShape: [Int], random: inout RandomStream) throws {
        let shape = [labels.count] + imageShape
        if input?.shape != shape {
            input = try Tensor.empty(shape, on: device)
            labelIndex = try Tensor.empty([labels.count], on: device)
        }
        guard let input, let labelIndex else { return }
        try device.upload(images, to: input.buffer)
        try device.upload(labels.map(Float.init), to: labelIndex.buffer)
        let model = model, classes = classes, device = device
        try recorder.step(model: model, shapes: [shape], optimizers: optimizers, random: &random) { random in
            let losses = try model.trainStep(input, labels: try labelIndex.oneHot(depth: classes), random: &random)
            if accumulator == nil { accumulator = try LossAccumulator(names: losses.keys.sorted(), device: device.base) }
            try accumulator?.add(losses, through: device)
        }
        accumulator?.countStep()
    }

    /// The loss sums and step count since they were last cleared (one wait for the device); `clear` starts
    /// new sums.
    func collect(clear: Bool) throws -> (names: [String], sums: [String: Double], steps: Int) {
        guard let accumulator else { return ([], [:], 0) }
        let (sums, steps) = try accumulator.collect(clear: clear)
        return (accumulator.names, sums, steps)
    }
}
