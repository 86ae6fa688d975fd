import ACAI
import ACAIData
import ACAIEval
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "K-means on a run's latent codes (SVD-whitened, as the reference) or on raw pixels with --raw (unwhitened unless --whiten), as the paper's Table 3: Hungarian matching of clusters to labels, test accuracy.")

    @Option(name: .customLong("run"), help: "Run folder (checkpoint.bin, options.json); writes cluster.json there.") var runFolder: String?
    @Flag(help: "Cluster raw pixels of --dataset instead of a run's codes (the paper's 'Data' column).") var raw = false
    @OptionGroup var data: DataOptions
    @Option(name: .customLong("n-init"), help: "K-means restarts (the reference's 1000).") var nInit = 1000
    @Option(name: .customLong("max-iter"), help: "K-means iterations per restart (reference: 1000).") var maxIter = 1000
    @Option(name: .customLong("max-train"), help: "Training images to encode (reference: up to 60000).") var maxTrain = 60000
    @Flag(name: .customLong("no-whiten"), help: "Latent codes: skip the SVD whitening (the reference whitens them).") var noWhiten = false
    @Flag(help: "--raw: SVD-whiten the pixels first (default: K-means on unwhitened pixels, the 'Data' numbers papers quote).") var whiten = false
    @Option(help: "Seed of the K-means initialisations.") var seed: UInt64 = 0
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        if raw == (runFolder != nil) { throw ValidationError("give either --run FOLDER or --raw with --dataset") }
        if nInit < 1 || maxIter < 1 { throw ValidationError("--n-init and --max-iter must be positive") }
        if whiten && !raw { throw ValidationError("--whiten applies to --raw; latent codes are whitened unless --no-whiten") }
        if noWhiten && raw { throw ValidationError("--raw clusters unwhitened pixels already; --whiten whitens them") }
    }

    func run() throws {
        let dev = try device.make()
        let started = Date()
        let train: Tensor, test: Tensor, labels: [Int], classes: Int
        if let runFolder {
            let options = try TrainOptions.load(runFolder: runFolder)
            var spec = options.data
            spec.trainLimit = min(spec.trainLimit ?? maxTrain, maxTrain)
            let source = try spec.make(seed: options.seed, runFolder: runFolder)
            guard let images = source as? ImageData else {
                throw ValidationError("\(runFolder) trained on \(options.data.dataset), which has no labelled image files to cluster")
            }
            let (header, values) = try Checkpoint.read(runFolder + "/checkpoint.bin")
            let model = try makeModel(header.model, config: header.config, seed: header.seed, on: dev)
            try Checkpoint.restore(header, values: values, into: model, path: runFolder + "/checkpoint.bin")
            train = try encodeAll(model, images.train, on: dev)
            test = try encodeAll(model, images.test, on: dev)
            labels = images.test.labels
            classes = images.classes
        } else {
            var spec = data.spec
            spec.trainLimit = min(spec.trainLimit ?? maxTrain, maxTrain)
            guard let images = try spec.make(seed: 0) as? ImageData else {
                throw ValidationError("--raw needs an image dataset (--dataset mnist32, ...), not \(data.dataset)")
            }
            train = try Tensor(shape: [images.train.count, images.train.imageSize], values: images.train.images, on: dev)
            test = try Tensor(shape: [images.test.count, images.test.imageSize], values: images.test.images, on: dev)
            labels = images.test.labels
            classes = images.classes
        }
        let whitened = raw ? whiten : !noWhiten
        print("K-means on \(raw ? "raw pixels" : "latent codes"), \(whitened ? "SVD-whitened" : "unwhitened")"
              + (raw ? (whitened ? " (--whiten)" : " (the default for --raw; --whiten whitens them)") : (whitened ? " (the reference's default; --no-whiten skips it)" : " (--no-whiten)")))
        guard !labels.isEmpty else { throw ValidationError("the test split has no labels to score clusters against") }
        let kmeans = KMeans(clusters: classes, initializations: nInit, maxIterations: maxIter, seed: seed)
        let result = try clusterAccuracy(train: train, test: test, testLabels: labels, classes: classes, kmeans: kmeans,
                                         whiten: whitened)
        let record = ClusterResult(accuracy: result.accuracy, inertia: result.inertia, initializations: nInit,
                                   maxIterations: maxIter, trainImages: train.shape[0], testImages: test.shape[0],
                                   whitened: whitened, seconds: Date().timeIntervalSince(started))
        print(String(format: "clustering accuracy %.2f%% (K-means k=%d, %d restarts, %d train / %d test codes of %d dims)",
                     result.accuracy, classes, nInit, train.shape[0], test.shape[0], train.shape[1]))
        if let runFolder {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(record), to: runFolder + "/cluster.json")
            print("written: \(runFolder)/cluster.json")
        }
    }
}

/// Latent codes of every image of `dataset`, flattened to [n, d], encoded in batches of 256.
func encodeAll(_ model: any Autoencoder, _ dataset: Dataset, on device: any Device) throws -> Tensor {
    var random = RandomStream(seed: 0xC0DE)
    var parts: [Tensor] = []
    let batch = 256
    for start in stride(from: 0, to: dataset.count, by: batch) {
        let n = min(batch, dataset.count - start)
        let slice = Array(dataset.images[(start * dataset.imageSize)..<((start + n) * dataset.imageSize)])
        let x = try Tensor(shape: [n, dataset.height, dataset.width, dataset.channels], values: slice, on: device)
        parts.append(try model.encode(x, random: &random).flattened())
    }
    return try Tensor.concat(parts)
}
