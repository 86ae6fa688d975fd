import ACAI
import ACAIData
import ACAIEval
import ACAIImaging
import ACAIModels
import Foundation

/// What a training run does; every field has a command-line option.
public struct TrainOptions: Codable, Sendable {
    public var model: ModelKind
    public var config: ModelConfig
    public var data = DataSpec()
    public var batch: Int = 64
    /// Stop after this many thousand (1024) samples ...
    public var kimg: Double?
    /// ... or after this many minutes of training, whichever comes first (one of them is required).
    public var minutes: Double?
    public var seed: UInt64 = 1
    /// Evaluate (lines metrics, probe accuracy, pictures, checkpoint) every this many kimg; the reference
    /// uses 64.
    public var evalKimg: Double = 64
    /// Print a progress line at most this often.
    public var progressSeconds: Double = 2
    public var out: String
    public var resume = false
    /// A safetensors file (`acai export`) whose weights a new run starts from (`--init`).
    public var initFrom: String?

    public init(model: ModelKind, config: ModelConfig, out: String) {
        self.model = model; self.config = config; self.out = out
    }
}

extension TrainOptions {
    enum CodingKeys: String, CodingKey {
        case model, config, data, batch, kimg, minutes, seed, evalKimg, progressSeconds, out, resume, initFrom
    }

    /// Decodes options.json; `data` may be absent (runs made before datasets were selectable trained on lines).
    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelKind.self, forKey: .model)
        config = try c.decode(ModelConfig.self, forKey: .config)
        data = try c.decodeIfPresent(DataSpec.self, forKey: .data) ?? DataSpec()
        batch = try c.decode(Int.self, forKey: .batch)
        kimg = try c.decodeIfPresent(Double.self, forKey: .kimg)
        minutes = try c.decodeIfPresent(Double.self, forKey: .minutes)
        seed = try c.decode(UInt64.self, forKey: .seed)
        evalKimg = try c.decode(Double.self, forKey: .evalKimg)
        progressSeconds = try c.decode(Double.self, forKey: .progressSeconds)
        out = try c.decode(String.self, forKey: .out)
        resume = try c.decode(Bool.self, forKey: .resume)
        initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
    }

    /// The options a run folder was created with (its options.json).
    public static func load(runFolder: String) throws -> TrainOptions {
        let path = runFolder + "/options.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.badCheckpoint("\(runFolder) is not a run folder: \(path) is missing")
        }
        var options = try decode(data, path: path)
        // A run folder reads and writes only itself, wherever it has been moved or copied to.
        options.out = runFolder
        return options
    }

    /// Decodes the bytes of an options.json; errors name `path`.
    public static func decode(_ data: Data, path: String) throws -> TrainOptions {
        do {
            return try JSONDecoder().decode(TrainOptions.self, from: data)
        } catch {
            throw TrainingError.badCheckpoint("\(path) is not a valid options file: \(error)")
        }
    }
}

/// One row of `metrics.csv` / `metrics.jsonl`.
public struct EvaluationRecord: Codable, Sendable {
    public var step: Int
    public var samples: Int
    public var seconds: Double
    public var samplesPerSecond: Double
    public var meanDistance: Double?
    public var smoothness: Double?
    public var probeAccuracy: Double
    /// Mean of each loss over the steps logged since the previous evaluation.
    public var losses: [String: Double]
    /// The process's resident memory and the device pool's live and cached bytes at the evaluation (absent
    /// in runs made before they were logged).
    public var residentBytes: Int?
    public var deviceLiveBytes: Int?
    public var deviceCachedBytes: Int?
}

/// `summary.json`: the final numbers of a run.
public struct RunSummary: Codable, Sendable {
    public var model: String
    public var paperName: String
    public var dataset: String
    public var device: String
    public var config: ModelConfig
    public var batch: Int
    public var seed: UInt64
    public var steps: Int
    public var samples: Int
    public var trainingSeconds: Double
    public var samplesPerSecond: Double
    public var evaluations: Int
    public var last: Metrics
    /// Median of the last (up to) 20 evaluations, the paper's table value.
    public var medianLast20: Metrics
    public var grids: [String]
    /// Processes of a data-parallel run (absent: one).
    public var processes: Int?

    /// Decodes the bytes of a summary.json; errors name `path`.
    public static func decode(_ data: Data, path: String) throws -> RunSummary {
        do {
            return try JSONDecoder().decode(RunSummary.self, from: data)
        } catch {
            throw TrainingError.badCheckpoint("\(path) is not a run summary: \(error)")
        }
    }

    public struct Metrics: Codable, Sendable {
        public var meanDistance: Double?
        public var smoothness: Double?
        public var probeAccuracy: Double?

        public init(meanDistance: Double?, smoothness: Double?, probeAccuracy: Double?) {
            self.meanDistance = meanDistance; self.smoothness = smoothness; self.probeAccuracy = probeAccuracy
        }
    }

    public init(model: String, paperName: String, dataset: String, device: String, config: ModelConfig, batch: Int,
                seed: UInt64, steps: Int, samples: Int, trainingSeconds: Double, samplesPerSecond: Double,
                evaluations: Int, last: Metrics, medianLast20: Metrics, grids: [String]) {
        self.model = model; self.paperName = paperName; self.dataset = dataset; self.device = device
        self.config = config; self.batch = batch; self.seed = seed; self.steps = steps; self.samples = samples
        self.trainingSeconds = trainingSeconds; self.samplesPerSecond = samplesPerSecond
        self.evaluations = evaluations; self.last = last; self.medianLast20 = medianLast20; self.grids = grids
    }
}

/// Trains one model on one dataset, with periodic evaluation, pictures, logs and checkpoints, in a run
/// folder:
///   metrics.csv, metrics.jsonl   one row per evaluation
///   interpolation.png, slerp.png, reconstruction.png, samples.png   latest pictures (reference layout)
///   curves.png                   losses and metrics over training
///   checkpoint.bin               the latest good checkpoint (atomic)
///   options.json, summary.json   what was asked, what came out
public final class Trainer {
    public let options: TrainOptions
    /// The device everything runs on, wrapped so that training steps can be recorded and replayed.
    public let device: RecordingDevice
    /// Runs the training steps: recorded once and replayed (`replaySteps` false: every step runs eagerly).
    /// The step on replica 0 (`model`) and, with `localReplicas`, on the others at once (`ReplicatedStep`).
    let trainingStep: ReplicatedStep
    public var steps: StepRecorder { trainingStep.primary.recorder }
    /// Replicas of the model trained together in this process (1: the model alone).
    public var replicaCount: Int { trainingStep.count }
    public private(set) var data: any TrainingData
    public let model: any Autoencoder
    let log: (String) -> Void
    let progress: (String) -> Void
    let metric: LinesMetric?
    let testImages: Tensor
    let testLabels: [Int]
    /// The paper's 256 interpolations when the test set has the 512 images they need, fewer otherwise.
    var protocolSpec: InterpolationProtocol { InterpolationProtocol(pairs: min(256, testLabels.count / 2)) }

    public private(set) var step = 0
    /// Samples at the last evaluation (-1: none yet in this process).
    var lastEvaluatedSamples = -1
    /// This process's seconds in collectives when the run started (progress lines show the rest).
    var collectiveStart = (seconds: 0.0, step: 0)
    public private(set) var samples = 0
    public private(set) var records: [EvaluationRecord] = []
    var random: RandomStream
    var evaluationRandom: RandomStream
    var elapsedBefore = 0.0
    var lossSums: [String: Double] = [:]
    /// Seconds spent in evaluations during this process (excluded from throughput).
    var evaluationSeconds = 0.0
    /// Evaluations run by this process (for the ETA).
    var evaluationsDone = 0
    var lossCounts = 0
    /// Receivers of each evaluation besides the logs (the TensorBoard event file), made at the first one.
    var sinks: [any EvaluationSink]?

    public var checkpointPath: String { options.out + "/checkpoint.bin" }
    /// Held while the trainer lives: one process per run folder (rank 0's; the other ranks touch no file).
    let lock: RunFolderLock?
    /// The processes of a data-parallel run (`SingleProcess` for a run of one): each trains its shard of every
    /// batch on its replica of the model, gradients are averaged over them, and rank 0 alone evaluates and writes
    /// the run folder.
    public let replicas: any Collective
    let shard: BatchShard
    /// Whether the model came from the run folder's checkpoint.
    public private(set) var restored = false

    /// Prepares a run folder (or reopens it with `options.resume`) and builds the model.
    public init(options: TrainOptions, device: any Device, data: any TrainingData, replaySteps: Bool = true,
                replicas: any Collective = SingleProcess(), localReplicas: [any Device] = [],
                log: @escaping (String) -> Void = { print($0) },
                progress: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws {
        try options.validate(imageShape: data.imageShape, device: device)
        let shard = try options.shard(over: replicas)
        let device = (device as? RecordingDevice) ?? RecordingDevice(base: device)
        self.device = device
        self.data = data
        self.log = log
        self.progress = progress
        self.replicas = replicas
        self.shard = shard
        if replicas.rank != 0 {
            // A replica: the options and the whole training state come from rank 0, the run folder is not touched.
            var bytes: [UInt8] = []
            try replicas.broadcast(&bytes, root: 0, what: "the run's options")
            self.options = try TrainOptions.decode(Data(bytes), path: "the options sent by rank 0")
            model = try makeModel(self.options.model, config: self.options.config, seed: self.options.seed, on: device)
            trainingStep = ReplicatedStep(primary: TrainingStep(model: model, device: device, replay: replaySteps,
                                                                classes: self.options.config.classes), others: [])
            lock = nil
            random = Self.trainingRandom(seed: self.options.seed)
            evaluationRandom = Self.evaluationRandom(seed: self.options.seed, samples: 0)
            testImages = try Tensor.zeros([1], on: device)
            testLabels = []
            metric = nil
            try receiveState()
            return
        }
        let fm = FileManager.default
        var options = options
        var resumeFrom: (Checkpoint.Header, [Float])?
        let madeFolder = !fm.fileExists(atPath: options.out)
        do {
            try fm.createDirectory(atPath: options.out, withIntermediateDirectories: true)
        } catch {
            throw TrainingError.io("cannot create run folder \(options.out): \(error)")
        }
        lock = try RunFolderLock(folder: options.out)
        if options.resume, !fm.fileExists(atPath: options.out + "/checkpoint.bin"),
           fm.fileExists(atPath: options.out + "/options.json") {
            // Stopped before its first checkpoint: there is nothing to resume, so the run starts over.
            log("no checkpoint in \(options.out) yet: starting the run from the beginning")
            for file in ["options.json", "metrics.csv", "metrics.jsonl"] { try? fm.removeItem(atPath: options.out + "/" + file) }
            options.resume = false
        }
        if fm.fileExists(atPath: options.out + "/checkpoint.bin") || fm.fileExists(atPath: options.out + "/options.json") {
            guard options.resume else {
                throw TrainingError.badOption("run folder \(options.out) already holds a run: pass --resume to continue it, or choose another --out")
            }
            let loaded = try Checkpoint.read(options.out + "/checkpoint.bin")
            guard loaded.header.model == options.model else {
                throw TrainingError.badOption("--model \(options.model.rawValue) does not match the checkpoint in \(options.out), which holds \(loaded.header.model.rawValue)")
            }
            options.config = loaded.header.config
            options.seed = loaded.header.seed
            resumeFrom = (loaded.header, loaded.values)
        } else if options.resume {
            throw TrainingError.badCheckpoint("--resume: no checkpoint at \(options.out)/checkpoint.bin")
        }
        self.options = options
        model = try makeModel(options.model, config: options.config, seed: options.seed, on: device)
        guard localReplicas.isEmpty || !replicas.isDistributed else {
            throw TrainingError.badOption("local replicas (--replicas) and mpirun's processes cannot be combined: start one process per core")
        }
        if !localReplicas.isEmpty {
            _ = try ReplicatedStep.shards(batch: options.batch, count: localReplicas.count + 1, model: options.model)
        }
        let others = try localReplicas.map { base -> TrainingStep in
            let recording = RecordingDevice(base: base)
            return TrainingStep(model: try makeModel(options.model, config: options.config, seed: options.seed, on: recording),
                                device: recording, replay: replaySteps, classes: options.config.classes)
        }
        trainingStep = ReplicatedStep(primary: TrainingStep(model: model, device: device, replay: replaySteps,
                                                            classes: options.config.classes), others: others)
        // --init: the weights of a safetensors file, checked whole before anything is written (a folder this
        // trainer made for a refused file is removed again).
        if resumeFrom == nil, let path = options.initFrom {
            do { try ModelWeights.load(path, into: model) } catch {
                if madeFolder { try? fm.removeItem(atPath: options.out) }
                throw error
            }
        }
        random = Self.trainingRandom(seed: options.seed)
        evaluationRandom = Self.evaluationRandom(seed: options.seed, samples: 0)
        let test = data.testSet()
        guard test.count >= 2 else { throw TrainingError.badOption("the \(data.name) test set has \(test.count) images; interpolation needs at least 2") }
        testImages = try Tensor(shape: [test.count] + data.imageShape, values: test.images, on: device)
        testLabels = test.labels
        metric = data.name == "lines" ? try LinesMetric(on: device) : nil

        if let (header, values) = resumeFrom {
            try Checkpoint.restore(header, values: values, into: model, path: checkpointPath)
            restored = true
            step = header.step
            samples = header.samples
            random = header.random
            elapsedBefore = header.elapsedSeconds
            try self.data.restore(position: header.dataPosition)
            records = try Self.readRecords(options.out + "/metrics.jsonl").filter { $0.samples <= samples }
            lastEvaluatedSamples = records.last?.samples ?? -1
            try rewriteLogs()
            log("resumed \(options.model.rawValue) from \(checkpointPath) at step \(step) (\(samples) samples)")
        } else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(options), to: options.out + "/options.json")
        }
        if replicas.isDistributed { try sendState() }
    }

    /// Rank 0: the resolved options (a resumed run's come from its checkpoint), then the model's parameters,
    /// moments and buffers with the step, the random stream and the data position, to every other rank, so
    /// that all replicas start equal. A run resumed with another number of processes continues the same
    /// trajectory: nothing in the state depends on it.
    func sendState() throws {
        var optionBytes = [UInt8](try JSONEncoder().encode(options))
        try replicas.broadcast(&optionBytes, root: 0, what: "the run's options")
        var state = [UInt8](try Checkpoint.encode(model: model, seed: options.seed, step: step, samples: samples,
                                                  random: random, dataPosition: data.position,
                                                  elapsedSeconds: elapsedBefore))
        try replicas.broadcast(&state, root: 0, what: "the initial state of the model")
        var evaluated = withUnsafeBytes(of: Int64(lastEvaluatedSamples)) { [UInt8]($0) }
        try replicas.broadcast(&evaluated, root: 0, what: "the samples of the last evaluation")
        joinReplicas()
    }

    /// The other ranks: the state rank 0 sends (`sendState`).
    func receiveState() throws {
        var state: [UInt8] = []
        try replicas.broadcast(&state, root: 0, what: "the initial state of the model")
        let (header, values) = try Checkpoint.decode(Data(state), path: "the state sent by rank 0")
        try Checkpoint.restore(header, values: values, into: model, path: "the state sent by rank 0")
        step = header.step
        samples = header.samples
        random = header.random
        elapsedBefore = header.elapsedSeconds
        try data.restore(position: header.dataPosition)
        var evaluated: [UInt8] = []
        try replicas.broadcast(&evaluated, root: 0, what: "the samples of the last evaluation")
        lastEvaluatedSamples = Int(evaluated.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })
        joinReplicas()
    }

    func joinReplicas() {
        model.join(replicas: replicas)
        random.shard = shard
    }

    var totalSamples: Int? { options.kimg.map { Int($0 * 1024) } }
    var evalEvery: Int { max(options.batch, Int(options.evalKimg * 1024)) }

    /// Runs until the budget is spent; returns the summary (also written to summary.json).
    @discardableResult
    public func run() throws -> RunSummary {
        let start = monotonicNanoseconds()
        var lastProgress = start
        var lastEvaluationSamples = samples - samples % evalEvery
        let windowStart = (samples, start)
        var window = windowStart
        func seconds(since t: UInt64) -> Double { Double(monotonicNanoseconds() - t) / 1e9 }
        func budgetLeft() -> Bool {
            if let total = totalSamples, samples >= total { return false }
            if let minutes = options.minutes, seconds(since: start) >= minutes * 60 { return false }
            return true
        }
        let processes = replicas.isDistributed ? " over \(replicas.size) processes (\(shard.localBatch) samples each)"
            : trainingStep.count > 1 ? " over \(trainingStep.count) replicas in this process (\(options.batch / trainingStep.count) samples each)" : ""
        if replicas.rank == 0 {
            log("training \(options.model.rawValue) on \(data.name) with \(device.id) (\(device.description)), batch \(options.batch)"
                + processes + (options.kimg.map { ", \($0) kimg" } ?? "") + (options.minutes.map { ", \($0) minutes" } ?? ""))
        }
        collectiveStart = (collectiveSeconds, step)
        while true {
            // The processes of a run stop together: at the first step where any of them was asked to stop
            // or found the time budget spent.
            var signal = Int64(StopRequest.signal), spent: Int64 = budgetLeft() ? 0 : 1
            if replicas.isDistributed {
                let agreed = try replicas.allReduceMax([signal, spent], what: "the agreement on whether to go on")
                signal = agreed[0]
                spent = agreed[1]
            }
            if spent != 0 { break }
            if signal != 0 {
                try collectLosses()
                if replicas.rank == 0 { try saveCheckpoint(elapsed: elapsedBefore + seconds(since: start)) }
                throw TrainingError.interrupted(signal: StopRequest.signal, step: step, checkpoint: checkpointPath,
                                                resume: (replicas.isDistributed ? "mpirun -np \(replicas.size) " : "")
                                                    + "acai train --model \(options.model.rawValue) --out \(options.out) --resume"
                                                    + (options.kimg.map { " --kimg \($0)" } ?? "")
                                                    + (options.minutes.map { " --minutes \($0)" } ?? ""))
            }
            // Every process moves through the data as far as the global batch (so the data's position is the
            // same for any number of processes) and makes only its shard of it.
            let batch = replicas.isDistributed ? data.next(options.batch, rows: shard.blocks) : data.next(options.batch)
            try trainingStep.run(images: batch.images, labels: batch.labels, imageShape: data.imageShape, random: &random)
            step += 1
            samples += options.batch
            let now = monotonicNanoseconds()
            if Double(now - lastProgress) / 1e9 >= options.progressSeconds {
                try collectLosses()
                lastProgress = now
                let rate = Double(samples - window.0) / max(Double(now - window.1) / 1e9, 1e-9)
                if replicas.rank == 0 { progress(progressLine(rate: rate, elapsed: seconds(since: start))) }
                window = (samples, now)
            }
            if samples - lastEvaluationSamples >= evalEvery {
                lastEvaluationSamples = samples - samples % evalEvery
                try evaluateAndSave(elapsed: elapsedBefore + seconds(since: start), rate: rate(since: windowStart))
            }
        }
        if lastEvaluatedSamples != samples {
            try evaluateAndSave(elapsed: elapsedBefore + seconds(since: start), rate: rate(since: windowStart))
        }
        var summary = makeSummary(trainingSeconds: elapsedBefore + seconds(since: start))
        if replicas.isDistributed { summary.processes = replicas.size }
        if replicas.rank == 0 {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(summary), to: options.out + "/summary.json")
        }
        return summary
    }

    /// The losses of the interval (averaged over the processes), then on rank 0 the evaluation and checkpoint.
    func evaluateAndSave(elapsed: Double, rate: Double) throws {
        try collectLosses(clear: true, overAllProcesses: true)
        lastEvaluatedSamples = samples
        guard replicas.rank == 0 else { return }
        try evaluate(elapsed: elapsed, rate: rate)
        try saveCheckpoint(elapsed: elapsed)
    }

    /// The stream of a run's training steps (α, noise, dropout) for its seed.
    static func trainingRandom(seed: UInt64) -> RandomStream { RandomStream(seed: mixSeeds(seed, 0x7A11)) }

    /// The stream of the evaluation at `samples` (0: the one a trainer starts with, before any evaluation).
    static func evaluationRandom(seed: UInt64, samples: Int) -> RandomStream {
        RandomStream(seed: samples == 0 ? mixSeeds(seed, 0xE7A1) : mixSeeds(mixSeeds(seed, 0xE7A1), UInt64(samples)))
    }

    /// Seconds this process spent in the collectives of its processes and of its local replicas.
    var collectiveSeconds: Double { replicas.collectiveSeconds + trainingStep.collectiveSeconds }

    /// Training throughput since `start`, not counting time spent evaluating.
    func rate(since start: (Int, UInt64)) -> Double {
        let seconds = Double(monotonicNanoseconds() - start.1) / 1e9 - evaluationSeconds
        return Double(samples - start.0) / max(seconds, 1e-9)
    }

    func progressLine(rate: Double, elapsed: Double) -> String {
        var line = "step \(step)  \(String(format: "%.1f", Double(samples) / 1024)) kimg  \(String(format: "%.0f", rate)) samples/s"
        var left: Double?
        if let total = totalSamples {
            // Training time left plus the evaluations still to come, at this process's mean evaluation time.
            left = Double(total - samples) / max(rate, 1e-9)
            let evaluationsLeft = total / evalEvery - samples / evalEvery + (total % evalEvery == 0 ? 0 : 1)
            if evaluationsDone > 0 { left! += Double(evaluationsLeft) * evaluationSeconds / Double(evaluationsDone) }
        }
        if let minutes = options.minutes { left = min(left ?? .infinity, minutes * 60 - elapsed) }
        if let left { line += "  ETA \(formatDuration(max(left, 0)))" }
        if replicas.isDistributed || trainingStep.count > 1, step > collectiveStart.step {
            let perStep = (collectiveSeconds - collectiveStart.seconds) / Double(step - collectiveStart.step)
            line += replicas.isDistributed ? "  \(replicas.size) processes" : "  \(trainingStep.count) replicas"
            line += ", allreduce \(String(format: "%.2f", perStep * 1000)) ms/step"
        }
        let memory = device.memory
        line += "  rss \(formatBytes(residentBytes()))  device \(formatBytes(memory.liveBytes)) live, \(formatBytes(memory.cachedBytes)) cached"
        if lossCounts > 0 {
            for key in lossSums.keys.sorted() { line += "  \(key) \(String(format: "%.4g", lossSums[key]! / Double(lossCounts)))" }
        }
        return line
    }

    /// Reads the device's loss sums of the current evaluation interval (one wait for the device per progress
    /// line or evaluation) and stops on NaN or infinity. The sums run over the whole interval on the device and
    /// are cleared only at evaluations (`clear`), so a logged mean does not depend on when progress lines
    /// happened to read them. A non-finite loss is seen at the next read-back, at most `progressSeconds` of
    /// training after it happened.
    ///
    /// In a data-parallel run the evaluations' means are over all processes (`overAllProcesses`, a collective
    /// every process calls at the same step); progress lines show rank 0's shard.
    func collectLosses(clear: Bool = false, overAllProcesses: Bool = false) throws {
        let (names, localSums, count) = try trainingStep.collect(clear: clear)
        var sums = localSums
        if overAllProcesses, replicas.isDistributed {
            // Every process has the same loss names (same model, same step) and counts the same steps.
            sums = try replicas.mean(of: sums, names: names, what: "the sum of the interval's losses")
        }
        guard count > 0 else { return }
        for name in names {
            let v = sums[name] ?? .nan
            guard v.isFinite else {
                let kept = FileManager.default.fileExists(atPath: checkpointPath) ? checkpointPath : nil
                throw TrainingError.nonFinite(loss: name, value: Float(v), step: step, checkpoint: kept)
            }
        }
        lossSums = sums
        lossCounts = count
    }

    /// Lines metrics, probe accuracy, pictures, logs and the curves plot.
    func evaluate(elapsed: Double, rate: Double) throws {
        // Each evaluation draws from its own stream (seed, samples), so its numbers do not depend on how many
        // evaluations came before: a resumed run evaluates exactly like one that never stopped.
        evaluationRandom = Self.evaluationRandom(seed: options.seed, samples: samples)
        let started = monotonicNanoseconds()
        defer {
            evaluationSeconds += Double(monotonicNanoseconds() - started) / 1e9
            evaluationsDone += 1
        }
        var score: LinesMetric.Score?
        let interpolation = try protocolSpec.interpolate(model, images: testImages, random: &evaluationRandom)
        if let metric {
            score = try metric.score(interpolation.linear, interpolations: protocolSpec.pairs, steps: protocolSpec.steps)
        }
        let accuracy = try probeAccuracy(model, images: testImages, labels: testLabels)
        var losses: [String: Double] = [:]
        for (k, v) in lossSums { losses[k] = v / Double(max(lossCounts, 1)) }
        lossSums = [:]
        lossCounts = 0
        let record = EvaluationRecord(step: step, samples: samples, seconds: elapsed, samplesPerSecond: rate,
                                      meanDistance: finite(score?.meanDistance), smoothness: finite(score?.smoothness),
                                      probeAccuracy: accuracy, losses: losses, residentBytes: residentBytes(),
                                      deviceLiveBytes: device.memory.liveBytes, deviceCachedBytes: device.memory.cachedBytes)
        records.append(record)
        try rewriteLogs()
        try writePictures(interpolation)
        try writeCurves()
        if sinks == nil { sinks = [try TensorBoardWriter(runFolder: options.out)] }
        for sink in sinks ?? [] {
            try sink.record(record, pictures: ["interpolation", "slerp", "reconstruction", "samples"].map { ("images/\($0)", options.out + "/\($0).png") })
        }
        var line = "eval at \(String(format: "%.1f", Double(samples) / 1024)) kimg:"
        if let score {
            line += " mean distance \(String(format: "%.3e", score.meanDistance)), smoothness \(score.smoothness.isNaN ? "undefined (constant interpolations)" : String(format: "%.4f", score.smoothness)),"
        }
        line += " probe accuracy \(String(format: "%.2f", accuracy))%"
        log(line)
    }

    func saveCheckpoint(elapsed: Double) throws {
        // Never replace a good checkpoint with non-finite parameters.
        for p in model.parameters where try p.toArray().contains(where: { !$0.isFinite }) {
            let kept = FileManager.default.fileExists(atPath: checkpointPath) ? checkpointPath : nil
            throw TrainingError.nonFinite(loss: "parameter \(p.name)", value: .nan, step: step, checkpoint: kept)
        }
        try Checkpoint.write(to: checkpointPath, model: model, seed: options.seed, step: step, samples: samples,
                             random: random, dataPosition: data.position,
                             elapsedSeconds: elapsed)
    }

    // MARK: pictures and logs

    func writePictures(_ result: InterpolationProtocol.Result) throws {
        let tile = result.imageShape[0], channels = result.imageShape[2]
        let p = protocolSpec
        try PNG.write(try Grid.image(tiles: result.linear, rows: p.pairs, cols: p.steps, tile: tile, channels: channels),
                      to: options.out + "/interpolation.png")
        try PNG.write(try Grid.image(tiles: result.slerp, rows: p.pairs, cols: p.steps, tile: tile, channels: channels),
                      to: options.out + "/slerp.png")
        // Reconstructions: 16 rows of 8 (original, reconstruction) pairs from the test set.
        let n = min(128, testLabels.count)
        let x = try testImages.slice(0..<n)
        let y = try model.decode(try model.encode(x, random: &evaluationRandom))
        let original = try x.toArray(), recon = try y.toArray()
        let per = original.count / n
        var tiles: [Float] = []
        for i in 0..<(n / 8 * 8) { tiles += original[(i * per)..<((i + 1) * per)]; tiles += recon[(i * per)..<((i + 1) * per)] }
        try PNG.write(try Grid.image(tiles: tiles, rows: n / 8, cols: 16, tile: tile, channels: channels),
                      to: options.out + "/reconstruction.png")
        // Random samples: decoded N(0, I) latent codes, as the reference.
        let latentShape = try model.encode(try testImages.slice(0..<1), random: &evaluationRandom).shape.dropFirst()
        let z = try evaluationRandom.tensor([256] + latentShape, .normal, on: device)
        try PNG.write(try Grid.image(tiles: try model.decode(z).toArray(), rows: 16, cols: 16, tile: tile, channels: channels),
                      to: options.out + "/samples.png")
    }

    static let csvMetrics = ["mean_distance", "smoothness", "probe_accuracy"]

    func csvHeader(_ lossNames: [String]) -> String {
        (["step", "samples", "kimg", "seconds", "samples_per_second"] + Self.csvMetrics + lossNames
            + ["rss_bytes", "device_live_bytes", "device_cached_bytes"]).joined(separator: ",")
    }

    func csvRow(_ r: EvaluationRecord, _ lossNames: [String]) -> String {
        func f(_ v: Double?) -> String { v.map { String($0) } ?? "" }
        return ([String(r.step), String(r.samples), String(Double(r.samples) / 1024), String(r.seconds),
                 String(r.samplesPerSecond), f(r.meanDistance), f(r.smoothness), String(r.probeAccuracy)]
                + lossNames.map { f(r.losses[$0]) }
                + [r.residentBytes, r.deviceLiveBytes, r.deviceCachedBytes].map { $0.map(String.init) ?? "" })
            .joined(separator: ",")
    }

    /// Both logs are rewritten whole and atomically after each evaluation: they are small, and the CSV's loss
    /// columns come from every record.
    func rewriteLogs() throws {
        let lossNames = Array(Set(records.flatMap { $0.losses.keys })).sorted()
        var csv = csvHeader(lossNames) + "\n"
        var jsonl = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for r in records {
            csv += csvRow(r, lossNames) + "\n"
            jsonl += String(decoding: try encoder.encode(r), as: UTF8.self) + "\n"
        }
        try writeAtomically(Data(csv.utf8), to: options.out + "/metrics.csv")
        try writeAtomically(Data(jsonl.utf8), to: options.out + "/metrics.jsonl")
    }

    static func readRecords(_ path: String) throws -> [EvaluationRecord] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").enumerated().map { i, line in
            do {
                return try JSONDecoder().decode(EvaluationRecord.self, from: Data(line.utf8))
            } catch {
                throw TrainingError.badCheckpoint("\(path) line \(i + 1) is not a metrics record: \(error)")
            }
        }
    }

    func writeCurves() throws {
        let x = records.map { Double($0.samples) / 1024 }
        let lossNames = Array(Set(records.flatMap { $0.losses.keys })).sorted()
        var panels = [LineChart.Panel(title: "losses", series: lossNames.map { name in
            LineChart.Series(name: name, x: x, y: records.map { $0.losses[name] ?? .nan })
        }, logY: true)]
        if records.contains(where: { $0.meanDistance != nil }) {
            panels.append(.init(title: "mean distance", series: [.init(name: "mean distance", x: x, y: records.map { $0.meanDistance ?? .nan })], logY: true))
            panels.append(.init(title: "smoothness", series: [.init(name: "smoothness", x: x, y: records.map { $0.smoothness ?? .nan })]))
        }
        panels.append(.init(title: "probe accuracy %", series: [.init(name: "test accuracy", x: x, y: records.map(\.probeAccuracy))]))
        try PNG.write(LineChart(panels: panels, xLabel: "kimg").render(), to: options.out + "/curves.png")
    }

    func makeSummary(trainingSeconds: Double) -> RunSummary {
        func median(_ values: [Double]) -> Double? {
            let v = values.filter { !$0.isNaN }.sorted()
            guard !v.isEmpty else { return nil }
            return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
        }
        let tail = records.suffix(20)
        return RunSummary(
            model: options.model.rawValue, paperName: options.model.paperName, dataset: data.name, device: device.id,
            config: options.config, batch: options.batch, seed: options.seed, steps: step, samples: samples,
            trainingSeconds: trainingSeconds, samplesPerSecond: Double(samples) / max(trainingSeconds, 1e-9),
            evaluations: records.count,
            last: .init(meanDistance: records.last?.meanDistance, smoothness: records.last?.smoothness,
                        probeAccuracy: records.last?.probeAccuracy),
            medianLast20: .init(meanDistance: median(tail.compactMap(\.meanDistance)),
                                smoothness: median(tail.compactMap(\.smoothness)),
                                probeAccuracy: median(tail.map(\.probeAccuracy))),
            grids: ["interpolation.png", "slerp.png", "reconstruction.png", "samples.png", "curves.png"].map { options.out + "/" + $0 })
    }
}

/// JSON has no NaN: an undefined metric (e.g. smoothness when every interpolation is constant) is stored as null.
func finite(_ v: Double?) -> Double? { v.flatMap { $0.isFinite ? $0 : nil } }

public func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

extension Trainer {
    /// Evaluates the restored model and writes its pictures, without training or touching the logs.
    public func drawAndScore() throws {
        guard restored else {
            throw TrainingError.badCheckpoint("\(options.out) has no checkpoint to draw from (\(checkpointPath) is missing)")
        }
        let interpolation = try protocolSpec.interpolate(model, images: testImages, random: &evaluationRandom)
        try writePictures(interpolation)
        if let metric {
            let score = try metric.score(interpolation.linear, interpolations: protocolSpec.pairs, steps: protocolSpec.steps)
            log("mean distance \(String(format: "%.4e", score.meanDistance)), smoothness \(String(format: "%.4f", score.smoothness))")
        }
        log("probe accuracy \(String(format: "%.2f", try probeAccuracy(model, images: testImages, labels: testLabels)))%")
        log("pictures written to \(options.out): interpolation.png, slerp.png, reconstruction.png, samples.png")
    }
}
