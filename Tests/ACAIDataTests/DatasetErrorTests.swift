import Foundation
import XCTest
@testable import ACAIData

/// Corrupted copies of the shared files, made in a temporary folder: each must throw the specific
/// `DatasetError` whose description names the file.
final class DatasetErrorTests: XCTestCase {
    private func mnistCopy(_ tmp: String, images: [UInt8]? = nil, labels: [UInt8]? = nil) throws {
        let dir = try SharedData.folder("mnist")
        try write(images ?? SharedData.bytes(dir + "/train-images-idx3-ubyte"), to: tmp + "/train-images-idx3-ubyte")
        try write(labels ?? SharedData.bytes(dir + "/train-labels-idx1-ubyte"), to: tmp + "/train-labels-idx1-ubyte")
    }

    func testTruncatedIDX() throws {
        let tmp = try makeTemporaryDirectory(self)
        let images = try SharedData.bytes(SharedData.folder("mnist") + "/train-images-idx3-ubyte")
        try mnistCopy(tmp, images: Array(images.prefix(16 + 784 * 10 + 5)))
        let path = tmp + "/train-images-idx3-ubyte"
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp),
                           mentioning: [path, "offset 16", "\(2000 * 784) bytes"]) {
            $0 == .truncated(file: path, offset: 16, expected: 2000 * 784, available: 784 * 10 + 5)
        }
        // A header cut short.
        try write(Array(images.prefix(6)), to: path)
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp), mentioning: [path, "offset 4"]) {
            if case .truncated = $0 { return true } else { return false }
        }
    }

    func testWrongMagic() throws {
        let tmp = try makeTemporaryDirectory(self)
        var images = try SharedData.bytes(SharedData.folder("mnist") + "/train-images-idx3-ubyte")
        images[3] = 0x01
        try mnistCopy(tmp, images: images)
        let path = tmp + "/train-images-idx3-ubyte"
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp),
                           mentioning: [path, "0x00000801", "0x00000803"]) {
            if case .badMagic(let file, _, _) = $0 { return file == path } else { return false }
        }
    }

    func testImageLabelCountMismatch() throws {
        let tmp = try makeTemporaryDirectory(self)
        let labels500 = try SharedData.bytes(SharedData.folder("mnist") + "/t10k-labels-idx1-ubyte")
        try mnistCopy(tmp, labels: labels500)
        let imagesPath = tmp + "/train-images-idx3-ubyte", labelsPath = tmp + "/train-labels-idx1-ubyte"
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp),
                           mentioning: [imagesPath, labelsPath, "2000", "500"]) {
            $0 == .countMismatch(imagesFile: imagesPath, images: 2000, labelsFile: labelsPath, labels: 500)
        }
    }

    func testTruncatedGzip() throws {
        let tmp = try makeTemporaryDirectory(self)
        let dir = try SharedData.folder("mnist")
        let gz = try SharedData.bytes(dir + "/train-images-idx3-ubyte.gz")
        try write(Array(gz.prefix(gz.count / 2)), to: tmp + "/train-images-idx3-ubyte.gz")
        try copyFile(dir + "/train-labels-idx1-ubyte.gz", to: tmp + "/train-labels-idx1-ubyte.gz")
        let path = tmp + "/train-images-idx3-ubyte.gz"
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp), mentioning: [path, "truncated"]) {
            if case .compression(let file, _) = $0 { return file == path } else { return false }
        }
        // Corrupt deflate data: zlib's own message.
        var corrupt = gz
        for k in 100..<200 { corrupt[k] = 0xff }
        try write(corrupt, to: path)
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp), mentioning: [path]) {
            if case .compression(let file, let message) = $0 { return file == path && !message.isEmpty } else { return false }
        }
    }

    func testMATWithoutX() throws {
        let tmp = try makeTemporaryDirectory(self)
        var writer = MATWriter()
        writer.add("y", dims: [3, 1], .double([1, 2, 3]))
        writer.add("Z", dims: [1, 1], .uint8([7]))
        let path = tmp + "/test_32x32.mat"
        try write(writer.bytes(), to: path)
        assertDatasetError(try Dataset.load(.svhn32, split: .test, directory: tmp), mentioning: [path, "X", "y, Z"]) {
            $0 == .missingVariable(file: path, missing: ["X"], found: ["y", "Z"])
        }
        // A MAT-file cut inside its compressed element.
        let real = try SharedData.bytes(SharedData.folder("substitute-mnistm-svhn-format") + "/test_32x32.mat")
        try write(Array(real.prefix(real.count / 2)), to: path)
        assertDatasetError(try Dataset.load(.svhn32, split: .test, directory: tmp), mentioning: [path, "truncated"]) {
            if case .truncated(let file, _, _, _) = $0 { return file == path } else { return false }
        }
        // Not a MAT-file at all.
        try write(Array(repeating: 0x41, count: 300), to: path)
        assertDatasetError(try Dataset.load(.svhn32, split: .test, directory: tmp), mentioning: [path]) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func testNonJPEGNamedJPG() throws {
        let tmp = try makeTemporaryDirectory(self)
        let folder = tmp + "/img_align_celeba"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let real = try SharedData.folder("substitute-celeba-format") + "/img_align_celeba"
        try copyFile(real + "/000001.jpg", to: folder + "/000001.jpg")
        let fake = folder + "/000002.jpg"
        try write(Array("this is not a JPEG image, only text".utf8), to: fake)
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp), mentioning: [fake, "Not a JPEG file"]) {
            if case .jpegDecode(let file, _) = $0 { return file == fake } else { return false }
        }
        // A JPEG cut in half: libjpeg's "Premature end of JPEG file".
        let jpeg = try SharedData.bytes(real + "/000003.jpg")
        try write(Array(jpeg.prefix(jpeg.count / 2)), to: fake)
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp), mentioning: [fake, "Premature end"]) {
            if case .jpegDecode(let file, _) = $0 { return file == fake } else { return false }
        }
        // An empty file.
        try write([], to: fake)
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp), mentioning: [fake]) {
            if case .jpegDecode(let file, _) = $0 { return file == fake } else { return false }
        }
    }

    func testImageSmallerThanCrop() throws {
        let tiny = RGBImage(width: 20, height: 60, pixels: [UInt8](repeating: 128, count: 20 * 60 * 3))
        assertDatasetError(try CelebA.preprocess(tiny, file: "tiny.jpg"), mentioning: ["tiny.jpg", "60x20"]) {
            if case .imageTooSmall = $0 { return true } else { return false }
        }
    }

    func testEmptyFolders() throws {
        let tmp = try makeTemporaryDirectory(self)
        assertDatasetError(try Dataset.load(.mnist32, split: .train, directory: tmp),
                           mentioning: ["expected train-images-idx3-ubyte or train-images-idx3-ubyte.gz in \(tmp)"]) {
            if case .missingFile = $0 { return true } else { return false }
        }
        assertDatasetError(try Dataset.load(.cifar10, split: .train, directory: tmp), mentioning: ["data_batch_1.bin", tmp]) {
            if case .missingFile = $0 { return true } else { return false }
        }
        assertDatasetError(try Dataset.load(.cifar10, split: .test, directory: tmp), mentioning: ["test_batch.bin", tmp]) {
            if case .missingFile = $0 { return true } else { return false }
        }
        assertDatasetError(try Dataset.load(.svhn32, split: .train, directory: tmp), mentioning: ["train_32x32.mat", tmp]) {
            if case .missingFile = $0 { return true } else { return false }
        }
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp), mentioning: [tmp, "*.jpg"]) {
            if case .noImages = $0 { return true } else { return false }
        }
        try FileManager.default.createDirectory(atPath: tmp + "/img_align_celeba", withIntermediateDirectories: true)
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp),
                           mentioning: [tmp + "/img_align_celeba", "*.jpg"]) {
            if case .noImages = $0 { return true } else { return false }
        }
        assertDatasetError(try Dataset.load(.celeba32, split: .train, directory: tmp + "/absent"),
                           mentioning: [tmp + "/absent"]) {
            if case .missingFile = $0 { return true } else { return false }
        }
    }

    func testTruncatedCIFAR() throws {
        let tmp = try makeTemporaryDirectory(self)
        let bytes = try SharedData.bytes(SharedData.folder("cifar10") + "/cifar-10-batches-bin/test_batch.bin")
        let path = tmp + "/test_batch.bin"
        try write(Array(bytes.prefix(3073 * 2 + 100)), to: path)
        assertDatasetError(try Dataset.load(.cifar10, split: .test, directory: tmp), mentioning: [path, "offset 6146", "3073 bytes"]) {
            $0 == .truncated(file: path, offset: 6146, expected: 3073, available: 100)
        }
    }
}
