import Foundation
import XCTest
@testable import ACAIData

final class MNISTTests: XCTestCase {
    /// Checks a loaded mnist32-style split against the raw IDX bytes read here independently.
    private func checkAgainstRaw(_ data: Dataset, directory: String, prefix: String,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let images = try SharedData.bytes(directory + "/\(prefix)-images-idx3-ubyte")
        let labels = try SharedData.bytes(directory + "/\(prefix)-labels-idx1-ubyte")
        XCTAssertEqual(bigEndian32(images, 0), 2051, file: file, line: line)
        XCTAssertEqual(bigEndian32(labels, 0), 2049, file: file, line: line)
        let n = bigEndian32(images, 4)
        XCTAssertEqual(data.count, n, file: file, line: line)
        XCTAssertEqual(bigEndian32(labels, 4), n, file: file, line: line)
        XCTAssertEqual([data.height, data.width, data.channels], [32, 32, 1], file: file, line: line)
        XCTAssertEqual(data.images.count, n * 32 * 32, file: file, line: line)
        XCTAssertEqual(data.classes, 10, file: file, line: line)
        XCTAssertEqual(data.labels, labels[8..<(8 + n)].map(Int.init), file: file, line: line)
        assertInUnitRange(data.images, "\(prefix) images", file: file, line: line)
        for index in [0, 1, n / 2, n - 1] {
            let image = Array(data.image(index))
            for r in 0..<32 {
                for c in 0..<32 {
                    let expected: Float
                    if (2..<30).contains(r) && (2..<30).contains(c) {
                        expected = unit(images[16 + index * 784 + (r - 2) * 28 + (c - 2)])
                    } else {
                        expected = -1  // the 2-pixel padding of −1
                    }
                    if image[r * 32 + c] != expected {
                        XCTFail("image \(index) pixel (\(r), \(c)): \(image[r * 32 + c]) != \(expected)", file: file, line: line)
                        return
                    }
                }
            }
        }
    }

    func testMNISTRawBothSplits() throws {
        let dir = try SharedData.folder("mnist")
        let train = try Dataset.load(.mnist32, split: .train, directory: dir)
        XCTAssertEqual(train.name, "mnist32")
        XCTAssertEqual(train.count, 2000)
        try checkAgainstRaw(train, directory: dir, prefix: "train")
        let test = try Dataset.load(.mnist32, split: .test, directory: dir)
        XCTAssertEqual(test.count, 500)
        try checkAgainstRaw(test, directory: dir, prefix: "t10k")
    }

    func testFashionMNISTBothSplits() throws {
        let dir = try SharedData.folder("fashion-mnist")
        let train = try DatasetName.fashion32.load(split: .train, directory: dir)
        XCTAssertEqual(train.name, "fashion32")
        try checkAgainstRaw(train, directory: dir, prefix: "train")
        let test = try DatasetName.fashion32.load(split: .test, directory: dir)
        try checkAgainstRaw(test, directory: dir, prefix: "t10k")
    }

    /// The same files read gzipped (only `.gz` in the folder) give identical arrays.
    func testMNISTGzipMatchesRaw() throws {
        let dir = try SharedData.folder("mnist")
        let tmp = try makeTemporaryDirectory(self)
        for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            try copyFile(dir + "/\(name).gz", to: tmp + "/\(name).gz")
        }
        for split in Split.allCases {
            let raw = try Dataset.load(.mnist32, split: split, directory: dir)
            let gz = try Dataset.load(.mnist32, split: split, directory: tmp)
            XCTAssertEqual(raw.count, gz.count)
            XCTAssertTrue(raw.images == gz.images, "\(split): gzip and raw images differ")
            XCTAssertEqual(raw.labels, gz.labels)
        }
    }

    /// The full official training set, `.gz` only. Facts of the raw file, found once with Python's
    /// `gzip.open(...).read()` on shared/data/mnist-train-60k: 60000 images; labels[0..<10] =
    /// 5 0 4 1 9 2 1 3 1 4, labels[59999] = 8; image 0 row 14 columns 10...17 = 0 0 0 81 240 253 253 119;
    /// image 59999 row 14 columns 10...17 = 190 196 14 2 97 254 252 146.
    func testMNIST60kGzipOnly() throws {
        let dir = try SharedData.folder("mnist-train-60k")
        let data = try Dataset.load(.mnist32, split: .train, directory: dir)
        XCTAssertEqual(data.count, 60000)
        XCTAssertEqual(data.images.count, 60000 * 1024)
        XCTAssertEqual(Array(data.labels.prefix(10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
        XCTAssertEqual(data.labels.last, 8)
        XCTAssertEqual(Set(data.labels), Set(0..<10))
        let row14: [UInt8] = [0, 0, 0, 81, 240, 253, 253, 119]
        let lastRow14: [UInt8] = [190, 196, 14, 2, 97, 254, 252, 146]
        let first = Array(data.image(0)), last = Array(data.image(59999))
        XCTAssertEqual(Array(first[(16 * 32 + 12)..<(16 * 32 + 20)]), row14.map(unit))
        XCTAssertEqual(Array(last[(16 * 32 + 12)..<(16 * 32 + 20)]), lastRow14.map(unit))
        XCTAssertEqual(first[0], -1)
        assertInUnitRange(data.images, "mnist 60k")
        // No t10k files in this folder: the test split names what it expected.
        assertDatasetError(try Dataset.load(.mnist32, split: .test, directory: dir),
                           mentioning: ["t10k-images-idx3-ubyte", dir]) {
            if case .missingFile = $0 { return true } else { return false }
        }
    }

    func testLimitKeepsFirstImages() throws {
        let dir = try SharedData.folder("mnist")
        let all = try Dataset.load(.mnist32, split: .test, directory: dir)
        let some = try Dataset.load(.mnist32, split: .test, directory: dir, limit: 7)
        XCTAssertEqual(some.count, 7)
        XCTAssertEqual(some.labels, Array(all.labels.prefix(7)))
        XCTAssertTrue(some.images == Array(all.images.prefix(7 * 1024)))
    }

    /// gzip: several members are decoded one after the other; garbage after the last one is an error.
    func testGzipMultiMember() throws {
        let dir = try SharedData.folder("mnist")
        let gz = try SharedData.bytes(dir + "/t10k-labels-idx1-ubyte.gz")
        let raw = try SharedData.bytes(dir + "/t10k-labels-idx1-ubyte")
        XCTAssertEqual(try Gzip.decompress(gz, file: "one member"), raw)
        XCTAssertEqual(try Gzip.decompress(gz + gz, file: "two members"), raw + raw)
        XCTAssertEqual(try Gzip.decompress(gz + [0, 0, 0, 0], file: "zero padding"), raw)
        assertDatasetError(try Gzip.decompress(gz + [1, 2, 3], file: "garbage.gz"), mentioning: ["garbage.gz", "trailing"]) {
            if case .compression = $0 { return true } else { return false }
        }
    }
}
