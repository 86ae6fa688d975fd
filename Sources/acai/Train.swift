import ACAI
import ACAIData
import ACAIEval
import ACAIImaging
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation

extension ModelKind: ExpressibleByArgument {}

/// Every model hyperparameter as an option; unset ones keep the reference's defaults for the dataset.
struct HyperparameterOptions: ParsableArguments {
    @Option(help: "Width of the first convolutions (reference: 16 on lines).") var depth: Int?
    @Option(help: "Channels of the latent code.") var latent: Int?
    @Option(name: .customLong("latent-width"), help: "Spatial size of the latent code (lines: 2; VQ-VAE 4).") var latentWidth: Int?
    @Option(help: "Adam learning rate of every optimiser.") var lr: Float?
    @Option(name: .customLong("dropout-keep"), help: "Dropout AE: probability of keeping a latent value.") var dropoutKeep: Float?
    @Option(help: "Denoising AE: standard deviation of the input noise.") var noise: Float?
    @Option(name: .customLong("vae-beta"), help: "VAE: weight of the KL term.") var vaeBeta: Float?
    @Option(name: .customLong("aae-hidden"), help: "AAE: discriminator hidden sizes, comma-separated.") var aaeHidden: String?
    @Option(name: .customLong("vq-codebook-log2"), help: "VQ-VAE: log2 of the codebook size.") var vqCodebookLog2: Int?
    @Option(name: .customLong("vq-latents"), help: "VQ-VAE: discrete latents per example.") var vqLatents: Int?
    @Option(name: .customLong("vq-decay"), help: "VQ-VAE: EMA decay of the codebook.") var vqDecay: Float?
    @Option(name: .customLong("vq-commitment"), help: "VQ-VAE: commitment loss weight β.") var vqCommitment: Float?
    @Option(name: .customLong("adv-weight"), help: "ACAI: λ, weight of the critic term.") var advWeight: Float?
    @Option(help: "ACAI: γ, blend of data and reconstruction shown to the critic.") var reg: Float?
    @Option(name: .customLong("adv-depth"), help: "ACAI: depth of the critic (default: --depth).") var advDepth: Int?

    func apply(to base: ModelConfig) throws -> ModelConfig {
        var c = base
        if let depth { c.net.depth = depth }
        if let latent { c.net.latent = latent }
        if let latentWidth { c.net.latentWidth = latentWidth }
        if let lr { c.learningRate = lr }
        if let dropoutKeep {
            guard dropoutKeep > 0, dropoutKeep <= 1 else { throw ValidationError("--dropout-keep must be in (0, 1], got \(dropoutKeep)") }
            c.dropoutKeep = dropoutKeep
        }
        if let noise { c.noiseStd = noise }
        if let vaeBeta { c.vaeBeta = vaeBeta }
        if let aaeHidden {
            let sizes = aaeHidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--aae-hidden must be positive sizes separated by commas, got '\(aaeHidden)'")
            }
            c.aaeHidden = sizes.map { $0! }
        }
        if let vqCodebookLog2 { c.vqCodebookLog2 = vqCodebookLog2 }
        if let vqLatents { c.vqLatents = vqLatents }
        if let vqDecay { c.vqDecay = vqDecay }
        if let vqCommitment { c.vqCommitment = vqCommitment }
        if let advWeight { c.advWeight = advWeight }
        if let reg { c.reg = reg }
        if let advDepth { c.advDepth = advDepth }
        do { try c.net.validate() } catch { throw ValidationError("\(error)") }
        return c
    }
}

/// Where datasets are read from.
struct DataOptions: ParsableArguments {
    @Option(help: "Dataset: \(DataSpec.names.joined(separator: ", ")).") var dataset = "lines"
    @Option(name: .customLong("data-dir"), help: "Folder with the dataset's files as they ship (default: $ACAI_DATA).") var dataDir: String?
    @Option(name: .customLong("test-data-dir"), help: "Folder with the test split, when it lives elsewhere (default: --data-dir).") var testDataDir: String?
    @Option(name: .customLong("train-limit"), help: "Use at most this many training images.") var trainLimit: Int?
    @Option(help: "--dataset folder: image size, a power of two (default 32); centre-crop and bicubic resize.") var size: Int?
    @Option(help: "--dataset folder: 1 (grey) or 3 (RGB) channels (default: 3 unless every image is grey).") var channels: Int?
    @Option(name: .customLong("test-fraction"), help: "--dataset folder without a test/ sub-folder: the seeded fraction held out (default 0.1).") var testFraction: Double?
    @Flag(help: "--dataset folder: stop at the first image file that does not decode (default: skip it and count it).") var strict = false

    func validate() throws {
        guard DataSpec.names.contains(dataset) else {
            throw ValidationError("--dataset \(dataset): expected one of \(DataSpec.names.joined(separator: ", "))")
        }
        if dataset != "folder", size != nil || channels != nil || testFraction != nil || strict {
            throw ValidationError("--size, --channels, --test-fraction and --strict apply to --dataset folder only")
        }
        if dataset == "folder" {
            do {
                try ImageFolder.Options(size: size ?? 32, channels: channels, testFraction: testFraction ?? 0.1).validate()
            } catch { throw ValidationError("\(error)") }
        }
    }

    var spec: DataSpec {
        var s = DataSpec(dataset: dataset, dataDir: dataDir, testDataDir: testDataDir, trainLimit: trainLimit)
        if dataset == "folder" {
            s.size = size; s.channels = channels; s.testFraction = testFraction; s.strict = strict ? true : nil
        }
        return s
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one autoencoder, with periodic evaluation, pictures, logs and checkpoints in a run folder.")

    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelKind
    @OptionGroup var data: DataOptions
    @Option(help: "Training budget in thousands (1024) of samples.") var kimg: Double?
    @Option(help: "Training budget in minutes (with --kimg: whichever ends first).") var minutes: Double?
    @Option(help: "Batch size.") var batch = 64
    @Option(help: "Random seed (initialisation, data, noise).") var seed: UInt64 = 1
    @Option(name: .customLong("eval-kimg"), help: "Evaluate, draw and checkpoint every this many kimg (reference: 64).") var evalKimg: Double = 64
    @Option(help: "Run folder (default: runs/MODEL).") var out: String?
    @Flag(help: "Continue the run in --out from its checkpoint.") var resume = false
    @Option(name: .customLong("init"), help: "Start from the weights of a safetensors file (acai export) instead of a fresh initialisation.") var initFrom: String?
    @OptionGroup var device: DeviceOptions
    @OptionGroup var processes: ProcessOptions
    @OptionGroup var localReplicas: ReplicaOptions
    @OptionGroup var hyper: HyperparameterOptions

    func validate() throws {
        if kimg == nil && minutes == nil { throw ValidationError("give a training budget: --kimg N or --minutes M") }
        if let kimg, kimg <= 0 { throw ValidationError("--kimg must be positive, got \(kimg)") }
        if let minutes, minutes <= 0 { throw ValidationError("--minutes must be positive, got \(minutes)") }
        if batch < 2 { throw ValidationError("--batch must be at least 2, got \(batch)") }
        if initFrom != nil && resume { throw ValidationError("--init starts a new run; --resume continues one: give one of them") }
    }

    func run() throws {
        let replicas = try processes.join()
        try replicas.runJob { try train(as: replicas) }
    }

    /// Under mpirun every process runs this with the same arguments; rank 0 alone writes the run folder.
    func train(as replicas: any Collective) throws {
        var config = try hyper.apply(to: data.spec.baseConfig(model))
        if let initFrom {
            // The file's format and model kind are checked before the data (a folder's cache) is written; its
            // tensors against the model once the model is built.
            let file = try SafetensorsFile.read(initFrom)
            if let kind = file.metadata["acai.model"], kind != model.rawValue {
                throw SafetensorsError(file: initFrom, "holds a model of kind '\(kind)', not '\(model.rawValue)'")
            }
        }
        let trainingData: any TrainingData
        do {
            trainingData = try data.spec.make(seed: seed, runFolder: replicas.rank == 0 ? out ?? "runs/\(data.dataset)-\(model.rawValue)" : nil)
        } catch { throw ValidationError("\(error)") }
        config.classes = trainingData.classes
        if data.dataset == "folder" {
            // The images decide: --size, and the channels found when --channels is not given.
            config.net.width = trainingData.imageShape[0]
            config.net.colors = trainingData.imageShape[2]
            do { try config.net.validate() } catch { throw ValidationError("\(error)") }
        }
        var options = TrainOptions(model: model, config: config, out: out ?? "runs/\(data.dataset)-\(model.rawValue)")
        options.data = data.spec
        options.kimg = kimg
        options.minutes = minutes
        options.batch = batch
        options.seed = seed
        options.evalKimg = evalKimg
        options.resume = resume
        options.initFrom = initFrom
        StopRequest.install()
        let devices = localReplicas.replicas > 1 ? try localReplicas.devices(device.device, processes: replicas)
            : [try device.make(for: replicas)]
        let trainer = try Trainer(options: options, device: devices[0], data: trainingData, replicas: replicas,
                                  localReplicas: Array(devices.dropFirst()))
        do {
            let summary = try trainer.run()
            if replicas.rank == 0 { print(formatSummary(summary)) }
        } catch let TrainingError.interrupted(signal, step, checkpoint, resume) {
            if replicas.rank == 0 {
                FileHandle.standardError.write(Data((TrainingError.interrupted(signal: signal, step: step, checkpoint: checkpoint,
                                                                               resume: resume).description + "\n").utf8))
            }
            throw ExitCode(128 + signal)
        }
    }
}

func formatSummary(_ s: RunSummary) -> String {
    func f(_ v: Double?, _ format: String) -> String { v.map { String(format: format, $0) } ?? "-" }
    return """
    \(s.paperName) (\(s.model)) on \(s.dataset), \(s.device): \(s.samples) samples in \(formatDuration(s.trainingSeconds)) (\(String(format: "%.0f", s.samplesPerSecond)) samples/s)
      mean distance \(f(s.last.meanDistance, "%.3e")) (median of last \(min(s.evaluations, 20)): \(f(s.medianLast20.meanDistance, "%.3e")))
      smoothness    \(f(s.last.smoothness, "%.4f")) (median: \(f(s.medianLast20.smoothness, "%.4f")))
      probe accuracy \(f(s.last.probeAccuracy, "%.2f"))% (median: \(f(s.medianLast20.probeAccuracy, "%.2f"))%)
      pictures: \(s.grids.joined(separator: ", "))
    """
}

struct EvalLines: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-lines",
        abstract: "Score an interpolation grid PNG (one row per interpolation, 32x32 tiles, 8-bit grey) with Mean Distance and Smoothness.")

    @Argument(help: "The grid PNG.") var grid: String
    @Option(help: "Rows (interpolations); default: the image height / 32.") var rows: Int?
    @Option(help: "Columns (steps); default: the image width / 32.") var cols: Int?
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let image: Image8
        do { image = try PNG.read(grid, channels: 1) } catch { throw ValidationError("\(error)") }
        let tiles: (values: [Float], rows: Int, cols: Int)
        do { tiles = try Grid.tiles(of: image, tile: 32, rows: rows, cols: cols, name: grid) } catch { throw ValidationError("\(error)") }
        guard tiles.cols >= 2 else { throw ValidationError("\(grid): an interpolation needs at least 2 columns, found \(tiles.cols)") }
        let metric = try LinesMetric(on: try device.make())
        let score = try metric.score(tiles.values, interpolations: tiles.rows, steps: tiles.cols)
        print("\(grid): \(tiles.rows) interpolations x \(tiles.cols) steps")
        print("mean distance \(String(format: "%.6e", score.meanDistance))")
        print("smoothness \(String(format: "%.6f", score.smoothness))")
    }
}

struct Interpolate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the interpolation, slerp, reconstruction and sample grids of a run from its checkpoint, and score them; or, with --from and --to, interpolate between two pictures of your own (strip PNG and animated GIF beside the pixel cross-fade).")

    @Option(name: .customLong("run"), help: "Run folder holding checkpoint.bin.") var runFolder: String
    @Option(help: "With --to: interpolate between two pictures of your own (PNG or JPEG) instead.") var from: String?
    @Option(help: "With --from: the picture to interpolate to.") var to: String?
    @Option(help: "With --from/--to: steps of the interpolation, both ends included.") var steps = 16
    @Option(help: "With --from/--to: output path without extension (default: RUN/interpolate-FROM-TO); writes .png and .gif.") var out: String?
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        if (from == nil) != (to == nil) { throw ValidationError("give both --from and --to, or neither") }
        if steps < 2 || steps > 1024 { throw ValidationError("--steps must be from 2 to 1024, got \(steps)") }
    }

    func run() throws {
        if let from, let to {
            let (model, _) = try loadRunModel(runFolder, on: try device.make())
            let pair: PairInterpolation
            do { pair = try PairInterpolation(model: model, from: from, to: to, steps: steps) } catch { throw ValidationError("\(error)") }
            for note in pair.notes { print("note: \(note)") }
            func stem(_ path: String) -> String { ((path as NSString).lastPathComponent as NSString).deletingPathExtension }
            let base = out ?? runFolder + "/interpolate-\(stem(from))-\(stem(to))"
            let scale = max(1, 128 / pair.size)
            try PNG.write(try pair.strip(scale: scale), to: base + ".png")
            try GIF.write(try pair.frames(scale: scale), delay: 12, to: base + ".gif")
            print("written: \(base).png (top: decoded interpolation, bottom: pixel cross-fade, \(steps) steps), \(base).gif (decoded | cross-fade, there and back)")
            return
        }
        var options = try TrainOptions.load(runFolder: runFolder)
        options.resume = true
        let trainer = try Trainer(options: options, device: try device.make(), data: try options.data.make(seed: options.seed, runFolder: runFolder))
        try trainer.drawAndScore()
    }
}
