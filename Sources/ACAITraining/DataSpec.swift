import ACAIData
import ACAIModels
import Foundation

/// Which data a run trains on, stored in options.json so that later commands (interpolate, cluster) can
/// rebuild it.
public struct DataSpec: Codable, Sendable, Equatable {
    /// `lines` or a `DatasetName` (mnist32, fashion32, svhn32, cifar10, celeba32).
    public var dataset: String
    public var dataDir: String?
    public var testDataDir: String?
    public var trainLimit: Int?
    /// `folder` only: the image size (a power of two), 1 or 3 channels (nil: 3 unless every image is grey),
    /// the held-out fraction when there is no test/ sub-folder, and whether an unreadable file is an error.
    public var size: Int?
    public var channels: Int?
    public var testFraction: Double?
    public var strict: Bool?

    public init(dataset: String = "lines", dataDir: String? = nil, testDataDir: String? = nil, trainLimit: Int? = nil) {
        self.dataset = dataset; self.dataDir = dataDir; self.testDataDir = testDataDir; self.trainLimit = trainLimit
    }

    public static let names = ["lines"] + DatasetName.allCases.map(\.rawValue) + ["folder"]

    /// The cache of decoded `folder` images inside a run folder.
    public static let folderCacheName = "folder-cache.bin"

    /// The training data, read from the files as they ship.
    /// `runFolder` is where a dataset that is decoded once keeps its cache (`folder`).
    public func make(seed: UInt64, runFolder: String? = nil) throws -> any TrainingData {
        if dataset == "lines" { return LinesData(seed: seed) }
        if dataset == "folder" {
            guard let dir = dataDir ?? ProcessInfo.processInfo.environment["ACAI_DATA"] else {
                throw TrainingError.badOption("--dataset folder needs --data-dir naming a folder of PNG/JPEG images")
            }
            let options = ImageFolder.Options(size: size ?? 32, channels: channels, testFraction: testFraction ?? 0.1,
                                              strict: strict ?? false, seed: seed)
            let loaded = try ImageFolder.load(directory: dir, options: options,
                                              cacheFile: runFolder.map { $0 + "/" + Self.folderCacheName })
            var train = loaded.train
            if let trainLimit, trainLimit < train.count {
                train = Dataset(name: train.name, images: Array(train.images.prefix(trainLimit * train.imageSize)),
                                labels: Array(train.labels.prefix(trainLimit)), count: trainLimit, height: train.height,
                                width: train.width, channels: train.channels, classes: train.classes)
            }
            return try ImageData(train: train, test: loaded.test, seed: seed)
        }
        guard let name = DatasetName(rawValue: dataset) else {
            throw TrainingError.badOption("unknown dataset '\(dataset)': expected one of \(Self.names.joined(separator: ", "))")
        }
        guard let dir = dataDir ?? ProcessInfo.processInfo.environment["ACAI_DATA"] else {
            throw TrainingError.badOption("dataset \(dataset) needs --data-dir (or ACAI_DATA) naming the folder with its files")
        }
        let train = try Dataset.load(name, split: .train, directory: dir, limit: trainLimit)
        let test = try Dataset.load(name, split: .test, directory: testDataDir ?? dir)
        return try ImageData(train: train, test: test, seed: seed)
    }

    /// The reference's model defaults for this dataset.
    public func baseConfig(_ kind: ModelKind) -> ModelConfig {
        switch dataset {
        case "lines": return .lines32(kind)
        case "mnist32", "fashion32": return .images(kind, colors: 1, depth: 16)
        case "folder":
            var c = ModelConfig.images(kind, colors: channels ?? 3, depth: channels == 1 ? 16 : 64)
            c.net.width = size ?? 32
            return c
        default: return .images(kind, colors: 3, depth: 64)
        }
    }
}
