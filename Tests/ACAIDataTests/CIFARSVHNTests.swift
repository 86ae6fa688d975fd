import Foundation
import XCTest
@testable import ACAIData

final class CIFARTests: XCTestCase {
    /// Checks every pixel and label against the raw 3073-byte records read here.
    private func check(_ data: Dataset, files: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        var records: [ArraySlice<UInt8>] = []
        for path in files {
            let bytes = try SharedData.bytes(path)
            XCTAssertEqual(bytes.count % 3073, 0, file: file, line: line)
            for r in 0..<(bytes.count / 3073) { records.append(bytes[(r * 3073)..<((r + 1) * 3073)]) }
        }
        XCTAssertEqual(data.count, records.count, file: file, line: line)
        XCTAssertEqual([data.height, data.width, data.channels, data.classes], [32, 32, 3, 10], file: file, line: line)
        XCTAssertEqual(data.labels, records.map { Int($0[$0.startIndex]) }, file: file, line: line)
        assertInUnitRange(data.images, "cifar", file: file, line: line)
        for (n, record) in records.enumerated() {
            let base = record.startIndex + 1
            let image = Array(data.image(n))
            for p in 0..<1024 {
                for ch in 0..<3 where image[p * 3 + ch] != unit(record[base + ch * 1024 + p]) {
                    XCTFail("record \(n) pixel \(p) channel \(ch) differs", file: file, line: line)
                    return
                }
            }
        }
    }

    func testCIFAR10BinaryFolder() throws {
        let dir = try SharedData.folder("cifar10")
        let bin = dir + "/cifar-10-batches-bin"
        let train = try Dataset.load(.cifar10, split: .train, directory: dir)
        XCTAssertEqual(train.count, 5)
        try check(train, files: (1...5).map { bin + "/data_batch_\($0).bin" })
        let test = try Dataset.load(.cifar10, split: .test, directory: dir)
        XCTAssertEqual(test.count, 5)
        try check(test, files: [bin + "/test_batch.bin"])
        // The bin folder itself may be given.
        XCTAssertTrue(try Dataset.load(.cifar10, split: .test, directory: bin).images == test.images)
    }

    func testPhotoSubstituteInCIFARLayout() throws {
        let bin = try SharedData.folder("substitute-photo32-cifar10-format") + "/cifar-10-batches-bin"
        let train = try Dataset.load(.cifar10, split: .train, directory: bin)
        XCTAssertEqual(train.count, 300)  // 60 records in each of the 5 batch files
        try check(train, files: (1...5).map { bin + "/data_batch_\($0).bin" })
        let test = try Dataset.load(.cifar10, split: .test, directory: bin)
        XCTAssertEqual(test.count, 100)
        try check(test, files: [bin + "/test_batch.bin"])
    }

    /// Only the batches present are read.
    func testCIFARSomeBatches() throws {
        let bin = try SharedData.folder("cifar10") + "/cifar-10-batches-bin"
        let tmp = try makeTemporaryDirectory(self)
        try copyFile(bin + "/data_batch_2.bin", to: tmp + "/data_batch_2.bin")
        try copyFile(bin + "/data_batch_4.bin", to: tmp + "/data_batch_4.bin")
        let train = try Dataset.load(.cifar10, split: .train, directory: tmp)
        try check(train, files: [tmp + "/data_batch_2.bin", tmp + "/data_batch_4.bin"])
    }
}

final class SVHNTests: XCTestCase {
    /// Facts of the raw files, found once with `scipy.io.loadmat` on shared/data/substitute-mnistm-svhn-format
    /// (X is uint8 32×32×3×N, y uint8 N×1; both compressed, miCOMPRESSED):
    /// train_32x32.mat: N = 500; X[0,0,:,0] = 147 138 133; X[5,7,:,0] = 158 158 157; X[31,0,2,3] = 96;
    ///   X[10,20,1,499] = 92; y[0..<5] = 9 3 2 7 1; y[499] = 7; first y == 10 at index 18, X[3,4,:,18] = 34 35 38.
    /// test_32x32.mat: N = 200; X[0,0,:,0] = 34 39 32; X[10,20,1,199] = 19; y[0..<5] = 6 6 4 3 1; y[199] = 9;
    ///   first y == 10 at index 5, X[3,4,:,5] = 85 88 95.
    /// (scipy indices are 0-based X[row, column, channel, image].)
    private func pixel(_ d: Dataset, _ n: Int, _ row: Int, _ column: Int, _ channel: Int) -> Float {
        d.images[((n * 32 + row) * 32 + column) * 3 + channel]
    }

    func testSVHNFormatSubstitute() throws {
        let dir = try SharedData.folder("substitute-mnistm-svhn-format")
        let train = try Dataset.load(.svhn32, split: .train, directory: dir)
        XCTAssertEqual(train.count, 500)
        XCTAssertEqual([train.height, train.width, train.channels, train.classes], [32, 32, 3, 10])
        XCTAssertEqual(train.images.count, 500 * 3072)
        assertInUnitRange(train.images, "svhn train")
        XCTAssertEqual((0..<3).map { pixel(train, 0, 0, 0, $0) }, [147, 138, 133].map(unit))
        XCTAssertEqual((0..<3).map { pixel(train, 0, 5, 7, $0) }, [158, 158, 157].map(unit))
        XCTAssertEqual(pixel(train, 3, 31, 0, 2), unit(96))
        XCTAssertEqual(pixel(train, 499, 10, 20, 1), unit(92))
        XCTAssertEqual((0..<3).map { pixel(train, 18, 3, 4, $0) }, [34, 35, 38].map(unit))
        // Labels are y − 1, as the reference: 9 3 2 7 1 → 8 2 1 6 0; y = 10 (digit 0) → 9.
        XCTAssertEqual(Array(train.labels.prefix(5)), [8, 2, 1, 6, 0])
        XCTAssertEqual(train.labels[499], 6)
        XCTAssertEqual(train.labels[18], 9)
        XCTAssertTrue(train.labels.allSatisfy { (0..<10).contains($0) })

        let test = try Dataset.load(.svhn32, split: .test, directory: dir)
        XCTAssertEqual(test.count, 200)
        assertInUnitRange(test.images, "svhn test")
        XCTAssertEqual((0..<3).map { pixel(test, 0, 0, 0, $0) }, [34, 39, 32].map(unit))
        XCTAssertEqual(pixel(test, 199, 10, 20, 1), unit(19))
        XCTAssertEqual((0..<3).map { pixel(test, 5, 3, 4, $0) }, [85, 88, 95].map(unit))
        XCTAssertEqual(Array(test.labels.prefix(5)), [5, 5, 3, 2, 0])
        XCTAssertEqual(test.labels[199], 8)
        XCTAssertEqual(test.labels[5], 9)
    }

    /// Training = train + extra when `extra_32x32.mat` exists.
    func testSVHNTrainPlusExtra() throws {
        let dir = try SharedData.folder("substitute-mnistm-svhn-format")
        let tmp = try makeTemporaryDirectory(self)
        try copyFile(dir + "/train_32x32.mat", to: tmp + "/train_32x32.mat")
        try copyFile(dir + "/test_32x32.mat", to: tmp + "/extra_32x32.mat")
        let both = try Dataset.load(.svhn32, split: .train, directory: tmp)
        let train = try Dataset.load(.svhn32, split: .train, directory: dir)
        let test = try Dataset.load(.svhn32, split: .test, directory: dir)
        XCTAssertEqual(both.count, 700)
        XCTAssertEqual(both.labels, train.labels + test.labels)
        XCTAssertTrue(both.images == train.images + test.images)
    }

    /// Uncompressed MAT-files (little- and big-endian), y stored as miDOUBLE or as miUINT8 in a double
    /// array, names as small data elements; X of 2 images whose bytes encode their column-major index.
    func testUncompressedMATVariants() throws {
        let tmp = try makeTemporaryDirectory(self)
        let n = 2
        let x: [UInt8] = (0..<(32 * 32 * 3 * n)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 256) }
        for (variant, bigEndian) in [("double", false), ("uint8", false), ("double", true)] {
            var writer = MATWriter(bigEndian: bigEndian)
            writer.add("X", dims: [32, 32, 3, n], .uint8(x))
            writer.add("y", dims: [n, 1], variant == "double" ? .double([10, 3]) : .doubleAsUInt8([10, 3]))
            try write(writer.bytes(), to: tmp + "/test_32x32.mat")
            let data = try Dataset.load(.svhn32, split: .test, directory: tmp)
            XCTAssertEqual(data.count, 2, variant)
            XCTAssertEqual(data.labels, [9, 2], variant)
            for k in 0..<n {
                for ch in 0..<3 {
                    for j in 0..<32 {
                        for i in 0..<32 where pixel(data, k, i, j, ch) != unit(x[i + 32 * (j + 32 * (ch + 3 * k))]) {
                            XCTFail("\(variant) big-endian \(bigEndian): X(\(i),\(j),\(ch),\(k)) misplaced")
                            return
                        }
                    }
                }
            }
        }
    }
}
