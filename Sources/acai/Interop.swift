import ACAI
import ACAIData
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation

/// A run's model rebuilt from its checkpoint.
func loadRunModel(_ runFolder: String, on device: any Device) throws -> (model: any Autoencoder, header: Checkpoint.Header) {
    let path = runFolder + "/checkpoint.bin"
    let (header, values) = try Checkpoint.read(path)
    let model = try makeModel(header.model, config: header.config, seed: header.seed, on: device)
    try Checkpoint.restore(header, values: values, into: model, path: path)
    return (model, header)
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's parameters (and model buffers) as a safetensors file: names as in the model, shapes as stored (HWIO filters), F32, with the model kind, config and samples seen as metadata.")

    @Option(name: .customLong("run"), help: "Run folder holding checkpoint.bin.") var runFolder: String
    @Option(help: "Output file (default: RUN/model.safetensors).") var out: String?
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let (model, header) = try loadRunModel(runFolder, on: try device.make())
        let path = out ?? runFolder + "/model.safetensors"
        try ModelWeights.export(model, samples: header.samples, step: header.step, to: path)
        let count = model.parameters.reduce(0) { $0 + $1.count } + model.buffers.reduce(0) { $0 + $1.tensor.count }
        print("written: \(path) (\(model.parameters.count + model.buffers.count) tensors, \(count) values, \(header.model.rawValue) at \(header.samples) samples)")
    }
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode a dataset split with a run's model and write latents.npy (float32, [n, latent dims]) and labels.npy (int64, when labelled) for NumPy.")

    @Option(name: .customLong("run"), help: "Run folder holding checkpoint.bin and options.json.") var runFolder: String
    @Option(help: "Dataset to encode (default: the run's own, from its options.json).") var dataset: String?
    @Option(name: .customLong("data-dir"), help: "Folder of --dataset's files (default: the run's).") var dataDir: String?
    @Option(name: .customLong("test-data-dir"), help: "Folder of the test split, when it lives elsewhere.") var testDataDir: String?
    @Option(help: "Split to encode: test or train.") var split = "test"
    @Option(help: "Encode at most this many images.") var limit: Int?
    @Option(help: "Output folder (created if needed).") var out: String
    @Flag(name: .customLong("with-images"), help: "Also write images.npy (the NHWC inputs) and reconstructions.npy (decoded latents), e.g. for tools/safetensors_to_torch.py.") var withImages = false
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        guard split == "test" || split == "train" else { throw ValidationError("--split must be test or train, got \(split)") }
        if let dataset, !DataSpec.names.contains(dataset) {
            throw ValidationError("--dataset \(dataset): expected one of \(DataSpec.names.joined(separator: ", "))")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be positive, got \(limit)") }
    }

    func run() throws {
        let options = try TrainOptions.load(runFolder: runFolder)
        var spec = options.data
        if let dataset { spec = DataSpec(dataset: dataset) }
        if let dataDir { spec.dataDir = dataDir }
        if let testDataDir { spec.testDataDir = testDataDir }
        if split == "test" { spec.trainLimit = 1 }
        let source: any TrainingData
        do { source = try spec.make(seed: options.seed, runFolder: runFolder) } catch { throw ValidationError("\(error)") }
        var images: [Float], labels: [Int], count: Int, labelled: Bool
        if split == "train" {
            guard let data = source as? ImageData else {
                throw ValidationError("--split train: \(spec.dataset) has no fixed training set (its batches are generated); encode --split test")
            }
            (images, labels, count, labelled) = (data.train.images, data.train.labels, data.train.count, data.train.hasLabels)
        } else {
            let test = source.testSet()
            (images, labels, count) = (test.images, test.labels, test.count)
            labelled = (source as? ImageData)?.test.hasLabels ?? true
        }
        guard source.imageShape == [options.config.net.width, options.config.net.width, options.config.net.colors] else {
            throw ValidationError("\(spec.dataset) images are \(source.imageShape.map(String.init).joined(separator: "x")), the model in \(runFolder) takes \(options.config.net.width)x\(options.config.net.width)x\(options.config.net.colors)")
        }
        if let limit, limit < count {
            let size = source.imageShape.reduce(1, *)
            images = Array(images.prefix(limit * size))
            labels = Array(labels.prefix(limit))
            count = limit
        }
        let (model, _) = try loadRunModel(runFolder, on: try device.make())
        let latents = try encodeImages(model, images, count: count, shape: source.imageShape)
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("--out \(out): cannot create the folder: \(error)")
        }
        let dims = count > 0 ? latents.count / count : 0
        try NumPy.write(.init(shape: [count, dims], values: .float32(latents)), to: out + "/latents.npy")
        var written = [out + "/latents.npy"]
        if labelled {
            try NumPy.write(.init(shape: [count], values: .int64(labels.map(Int64.init))), to: out + "/labels.npy")
            written.append(out + "/labels.npy")
        }
        if withImages {
            let shape = [count] + source.imageShape
            let recon = try decodeLatents(model, latents, count: count, latentShape: try latentShape(model, imageShape: source.imageShape))
            try NumPy.write(.init(shape: shape, values: .float32(images)), to: out + "/images.npy")
            try NumPy.write(.init(shape: shape, values: .float32(recon)), to: out + "/reconstructions.npy")
            written += [out + "/images.npy", out + "/reconstructions.npy"]
        }
        print("encoded \(count) \(split) images of \(spec.dataset) to \(dims) latent dimensions; written: \(written.joined(separator: ", "))")
    }
}

/// Latent codes of `count` NHWC images, flattened to n × d, encoded in batches of 256.
func encodeImages(_ model: any Autoencoder, _ images: [Float], count: Int, shape: [Int]) throws -> [Float] {
    var random = RandomStream(seed: 0xC0DE)
    let size = shape.reduce(1, *)
    var out: [Float] = []
    for start in stride(from: 0, to: count, by: 256) {
        let n = min(256, count - start)
        let x = try Tensor(shape: [n] + shape, values: Array(images[(start * size)..<((start + n) * size)]), on: model.device)
        out += try model.encode(x, random: &random).flattened().toArray()
    }
    return out
}

/// The shape of one example's latent code, [latentWidth, latentWidth, latent] for the convolutional models.
func latentShape(_ model: any Autoencoder, imageShape: [Int]) throws -> [Int] {
    var random = RandomStream(seed: 0xC0DE)
    let x = try Tensor.zeros([1] + imageShape, on: model.device)
    return Array(try model.encode(x, random: &random).shape.dropFirst())
}

/// Images decoded from flattened latent codes, in batches of 256.
func decodeLatents(_ model: any Autoencoder, _ latents: [Float], count: Int, latentShape: [Int]) throws -> [Float] {
    let size = latentShape.reduce(1, *)
    var out: [Float] = []
    for start in stride(from: 0, to: count, by: 256) {
        let n = min(256, count - start)
        let z = try Tensor(shape: [n] + latentShape, values: Array(latents[(start * size)..<((start + n) * size)]), on: model.device)
        out += try model.decode(z).toArray()
    }
    return out
}
