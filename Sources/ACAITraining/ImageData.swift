import ACAIData

/// A real image dataset (MNIST, Fashion-MNIST, SVHN, CIFAR-10, CelebA) as training data: the training split
/// is visited in a fresh seeded permutation every epoch (the position — epoch and index — is checkpointed,
/// so a resumed run sees the same batches), and the test split is the fixed test set.
public struct ImageData: TrainingData {
    public let name: String
    public let train: Dataset
    public let test: Dataset
    let seed: UInt64
    var epoch: UInt64 = 0
    var index = 0
    var order: [Int]

    public init(train: Dataset, test: Dataset, seed: UInt64) throws {
        guard train.count > 0, test.count > 0 else {
            throw TrainingError.badOption("dataset \(train.name): \(train.count) training and \(test.count) test images; both must be non-empty")
        }
        guard train.imageSize == test.imageSize, train.height == test.height else {
            throw TrainingError.badOption("dataset \(train.name): training images are \(train.height)x\(train.width)x\(train.channels), test images \(test.height)x\(test.width)x\(test.channels)")
        }
        name = train.name
        self.train = train
        self.test = test
        self.seed = seed
        order = Self.permutation(count: train.count, seed: seed, epoch: 0)
    }

    public var imageShape: [Int] { [train.height, train.width, train.channels] }
    public var classes: Int { max(train.classes, 1) }

    static func permutation(count: Int, seed: UInt64, epoch: UInt64) -> [Int] {
        var state = seed ^ (epoch &* 0x9E37_79B9_7F4A_7C15) ^ 0x5EED
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(next() % UInt64(i + 1))) }
        }
        return order
    }

    public mutating func next(_ count: Int) -> (images: [Float], labels: [Int]) {
        next(count, rows: [0..<count])
    }

    public mutating func next(_ count: Int, rows: [Range<Int>]) -> (images: [Float], labels: [Int]) {
        let picked = (0..<count).map { _ in nextIndex() }
        var images: [Float] = [], labels: [Int] = []
        images.reserveCapacity(rows.reduce(0) { $0 + $1.count } * train.imageSize)
        for range in rows {
            for i in picked[range] {
                images += train.image(i)
                labels.append(train.hasLabels ? train.labels[i] : 0)
            }
        }
        return (images, labels)
    }

    /// The next training image's index in this epoch's order (a new order at each epoch's end).
    private mutating func nextIndex() -> Int {
        if index == order.count {
            epoch += 1
            index = 0
            order = Self.permutation(count: train.count, seed: seed, epoch: epoch)
        }
        defer { index += 1 }
        return order[index]
    }

    public var position: [UInt64] { [epoch, UInt64(index)] }

    public mutating func restore(position: [UInt64]) throws {
        guard position.count == 2, Int(position[1]) <= train.count else {
            throw TrainingError.badCheckpoint("dataset position \(position) does not fit \(train.name) with \(train.count) training images")
        }
        epoch = position[0]
        index = Int(position[1])
        order = Self.permutation(count: train.count, seed: seed, epoch: epoch)
    }

    public func testSet() -> (images: [Float], labels: [Int], count: Int) {
        (test.images, test.hasLabels ? test.labels : Array(repeating: 0, count: test.count), test.count)
    }
}
