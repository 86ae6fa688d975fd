import Foundation
import XCTest
@testable import ACAIData

final class CelebATests: XCTestCase {
    /// Facts of the raw files, found once with Pillow 13.0 (`numpy.asarray(Image.open(f).convert('RGB'))`,
    /// libjpeg-turbo's accurate integer DCT and fancy upsampling, the defaults) on
    /// shared/data/substitute-celeba-format/img_align_celeba: every file is 178×218 RGB;
    /// 000001.jpg pixels (row, column) → RGB: (0,0) 129 104 63; (100,89) 221 124 82; (217,177) 137 128 133;
    ///   (36,16) 244 214 186; (109,89) 212 106 64; (36,89) 222 207 200; (109,16) 19 8 6.
    /// 000024.jpg: (0,0) 32 47 78; (36,16) 39 54 87; (109,89) 44 60 93; (36,89) 35 50 81; (109,16) 46 64 100.
    static let pillow: [String: [(Int, Int, [Int])]] = [
        "000001.jpg": [(0, 0, [129, 104, 63]), (100, 89, [221, 124, 82]), (217, 177, [137, 128, 133]),
                       (36, 16, [244, 214, 186]), (109, 89, [212, 106, 64]), (36, 89, [222, 207, 200]),
                       (109, 16, [19, 8, 6])],
        "000024.jpg": [(0, 0, [32, 47, 78]), (36, 16, [39, 54, 87]), (109, 89, [44, 60, 93]),
                       (36, 89, [35, 50, 81]), (109, 16, [46, 64, 100])],
    ]

    func testJPEGDecodeMatchesPillow() throws {
        let dir = try SharedData.folder("substitute-celeba-format") + "/img_align_celeba"
        for (name, facts) in Self.pillow {
            let accurate = try JPEG.decode(file: dir + "/" + name, dct: .accurate)
            let fast = try JPEG.decode(file: dir + "/" + name, dct: .fast)
            for image in [accurate, fast] {
                XCTAssertEqual(image.width, 178)
                XCTAssertEqual(image.height, 218)
                XCTAssertEqual(image.pixels.count, 178 * 218 * 3)
            }
            for (row, column, rgb) in facts {
                let at = (row * 178 + column) * 3
                // The accurate DCT is libjpeg-turbo's default, as Pillow's: identical bytes.
                XCTAssertEqual(accurate.pixels[at..<(at + 3)].map(Int.init), rgb, "\(name) (\(row),\(column))")
                // The fast DCT (TensorFlow's default) differs by a few levels at most.
                for c in 0..<3 {
                    XCTAssertLessThanOrEqual(abs(Int(fast.pixels[at + c]) - rgb[c]), 6, "\(name) (\(row),\(column)) channel \(c)")
                }
            }
        }
    }

    func testCelebAFormatSubstitute() throws {
        let root = try SharedData.folder("substitute-celeba-format")
        let train = try Dataset.load(.celeba32, split: .train, directory: root)
        XCTAssertEqual(train.name, "celeba32")
        XCTAssertEqual(train.count, 24)
        XCTAssertEqual([train.height, train.width, train.channels, train.classes], [32, 32, 3, 1])
        XCTAssertEqual(train.images.count, 24 * 32 * 32 * 3)
        XCTAssertTrue(train.labels.isEmpty)
        XCTAssertFalse(train.hasLabels)
        assertInUnitRange(train.images, "celeba")
        // The "test" split reads the same images, as the reference.
        let test = try Dataset.load(.celeba32, split: .test, directory: root)
        XCTAssertTrue(test.images == train.images)
        // Files are sorted by name: image 0 is 000001.jpg, image 23 is 000024.jpg. With scale 146/32 = 4.5625
        // (exact in Float) output index 0 samples crop index 0 and output 16 samples crop index 73 with weight
        // 1 (the cubic kernel is 1 at 0 and 0 at ±1, ±2), so those outputs are the decoded pixels at
        // rows 36 / 109 and columns 16 / 89 (crop 36 rows, 16 columns), up to the fast DCT's few levels.
        let checks: [(Int, String)] = [(0, "000001.jpg"), (23, "000024.jpg")]
        for (index, name) in checks {
            let image = Array(train.image(index))
            for (row, column, rgb) in Self.pillow[name]! {
                guard (row == 36 || row == 109), (column == 16 || column == 89) else { continue }
                let oy = row == 36 ? 0 : 16, ox = column == 16 ? 0 : 16
                for c in 0..<3 {
                    let got = image[(oy * 32 + ox) * 3 + c]
                    XCTAssertEqual(got, unit(UInt8(rgb[c])), accuracy: 6 * 2 / 255 + 1e-6, "\(name) output (\(oy),\(ox)) channel \(c)")
                }
            }
        }
        // The loader's image is the documented pipeline applied to the decoded file.
        let one = try CelebA.preprocess(file: root + "/img_align_celeba/000005.jpg")
        XCTAssertTrue(Array(train.image(4)) == one)
        // A folder that directly holds the JPEGs works too; `limit` keeps the first files.
        let firstThree = try Dataset.load(.celeba32, split: .train, directory: root + "/img_align_celeba", limit: 3)
        XCTAssertEqual(firstThree.count, 3)
        XCTAssertTrue(firstThree.images == Array(train.images.prefix(3 * 3072)))
    }

    /// TF1 legacy bicubic: scale in/out, source = out·scale, a = −0.75, clamped taps.
    func testBicubicMatchesTF1LegacyBehaviour() {
        // Identity when the size does not change (weights 0, 1, 0, 0 at integer positions).
        let h = 5, w = 7
        let image = (0..<(h * w * 2)).map { Float(($0 * 37) % 11) / 5 - 1 }
        XCTAssertEqual(Bicubic.resize(image, height: h, width: w, channels: 2, outHeight: h, outWidth: w), image)
        // A constant image stays constant (the weights sum to 1).
        let constant = [Float](repeating: 0.25, count: 146 * 146 * 3)
        for v in Bicubic.resize(constant, height: 146, width: 146, channels: 3, outHeight: 32, outWidth: 32) {
            XCTAssertEqual(v, 0.25, accuracy: 1e-5)
        }
        // A horizontal ramp f(x) = x, compared with the analytic cubic-convolution kernel (a = −0.75) at the
        // source coordinate o·146/32 away from the borders (TensorFlow's table quantises the fraction to
        // 1/1024, hence the tolerance). With a = −0.75 the ramp is not reproduced exactly (it would be with
        // Keys' −0.5), which makes this check sensitive to the choice of a.
        func kernel(_ x: Double) -> Double {
            let a = -0.75, x = abs(x)
            if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            return 0
        }
        let ramp = (0..<(4 * 146)).map { Float($0 % 146) }
        let out = Bicubic.resize(ramp, height: 4, width: 146, channels: 1, outHeight: 2, outWidth: 32)
        var differsFromLinear = false
        for o in 1..<32 where Double(o) * 4.5625 + 2 < 146 {
            let position = Double(o) * 146 / 32, base = position.rounded(.down), t = position - base
            let expected = (-1...2).reduce(0.0) { $0 + kernel(t - Double($1)) * (base + Double($1)) }
            XCTAssertEqual(Double(out[o]), expected, accuracy: 2e-3, "output \(o)")
            if abs(expected - position) > 5e-3 { differsFromLinear = true }
        }
        XCTAssertTrue(differsFromLinear)
        // Output 0 samples source 0 exactly: no half-pixel shift (that would give 1.78).
        XCTAssertEqual(out[0], 0)
        // a = −0.75, not Keys' −0.5: the weights at t = 1/2 are −0.09375, 0.59375, 0.59375, −0.09375.
        let step: [Float] = [0, 0, 1, 1]
        let half = Bicubic.resize(step, height: 1, width: 4, channels: 1, outHeight: 1, outWidth: 8)
        // Output 3 samples 1.5: taps 0, 1, 2, 3 with weights above → 0.59375 − 0.09375 = 0.5.
        XCTAssertEqual(half[3], 0.5, accuracy: 1e-6)
        // Output 1 samples 0.5: taps (clamped) 0, 0, 1, 2 → 1·(−0.09375) = −0.09375 (−0.0625 with a = −0.5).
        XCTAssertEqual(half[1], -0.09375, accuracy: 1e-6)
    }
}
