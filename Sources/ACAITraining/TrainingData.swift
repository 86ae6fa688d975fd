import ACAIData

/// A source of training batches whose position can be saved and restored, so a resumed run sees the same
/// batches as one that never stopped.
public protocol TrainingData {
    var name: String { get }
    var imageShape: [Int] { get }
    var classes: Int { get }
    /// The next `count` images (NHWC floats in [-1, 1]) and labels.
    mutating func next(_ count: Int) -> (images: [Float], labels: [Int])
    /// Only the rows `rows` (in that order) of what `next(count)` gives, the data moving as far: a process's
    /// shard of a data-parallel batch, without making the other processes' images.
    mutating func next(_ count: Int, rows: [Range<Int>]) -> (images: [Float], labels: [Int])
    /// Opaque position for checkpoints.
    var position: [UInt64] { get }
    mutating func restore(position: [UInt64]) throws
    /// A fixed labelled test set.
    func testSet() -> (images: [Float], labels: [Int], count: Int)
}

extension TrainingData {
    public mutating func next(_ count: Int, rows: [Range<Int>]) -> (images: [Float], labels: [Int]) {
        let all = next(count)
        let size = imageShape.reduce(1, *)
        var images: [Float] = [], labels: [Int] = []
        for range in rows {
            images += all.images[(range.lowerBound * size)..<(range.upperBound * size)]
            labels += all.labels[range]
        }
        return (images, labels)
    }
}

/// The lines benchmark: an endless seeded stream of random lines for training, and a fixed seeded test set of
/// 5000 lines (the reference draws 5000 test lines too).
public struct LinesData: TrainingData {
    public static let testCount = 5000
    public static let testSeed: UInt64 = 0x11E5_7E57
    public let name = "lines"
    public let imageShape = [32, 32, 1]
    public let classes = 10
    private var generator: LinesGenerator

    public init(seed: UInt64) { generator = LinesGenerator(seed: seed) }

    public mutating func next(_ count: Int) -> (images: [Float], labels: [Int]) {
        let b = generator.batch(count)
        return (b.images, b.labels)
    }

    public mutating func next(_ count: Int, rows: [Range<Int>]) -> (images: [Float], labels: [Int]) {
        generator.batch(count, rows: rows)
    }

    public var position: [UInt64] { [generator.position] }

    public mutating func restore(position: [UInt64]) throws {
        guard position.count == 1 else { throw TrainingError.badCheckpoint("lines data position has \(position.count) values, expected 1") }
        generator = LinesGenerator(position: position[0])
    }

    public func testSet() -> (images: [Float], labels: [Int], count: Int) {
        var g = LinesGenerator(seed: Self.testSeed)
        let b = g.batch(Self.testCount)
        return (b.images, b.labels, Self.testCount)
    }
}
