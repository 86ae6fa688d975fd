import ACAI
import ACAIData
import ACAIEval
import ACAIImaging
import ACAITestSupport
import Foundation
import XCTest

/// The lines renderer and the Mean Distance / Smoothness metrics against the golden values of the
/// reference implementation (../shared/golden/lines): renderer to float32 rounding; metrics within 1e-6
/// absolute (distance) and 1e-3 (smoothness), from raw arrays and from the PNG grids, on both devices.
final class LinesTests: XCTestCase {
    struct Golden: Decodable {
        struct DrawLine: Decodable { var angles: [Double] }
        struct Case: Decodable {
            var file: String
            var shape: [Int]
            var mean_distance: Double
            var smoothness: Double
            var png: String
            var png_mean_distance: Double
            var png_smoothness: Double
        }
        var draw_line: DrawLine
        var cases: [String: Case]
    }

    static func golden() throws -> (Golden, String) {
        let dir = try SharedFolder.path("golden/lines")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/golden.json"))
        return (try JSONDecoder().decode(Golden.self, from: data), dir)
    }

    static func floats(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testRendererMatchesReference() throws {
        let (golden, dir) = try Self.golden()
        let expected = try Self.floats(dir + "/draw_line.f32")
        XCTAssertEqual(expected.count, golden.draw_line.angles.count * 1024)
        for (i, angle) in golden.draw_line.angles.enumerated() {
            let image = Lines.image(angle: angle)
            XCTAssertEqual(image, Array(expected[(i * 1024)..<((i + 1) * 1024)]), "line at angle \(angle)")
        }
    }

    func testMetricsOnGoldenCases() throws {
        let (golden, dir) = try Self.golden()
        try TestDevices.forEach { device in
            let metric = try LinesMetric(on: device)
            for (name, c) in golden.cases.sorted(by: { $0.key < $1.key }) {
                let values = try Self.floats(dir + "/" + c.file)
                let score = try metric.score(values, interpolations: c.shape[0], steps: c.shape[1])
                XCTAssertEqual(score.meanDistance, c.mean_distance, accuracy: 1e-6, "\(name) mean distance on \(device.id)")
                XCTAssertEqual(score.smoothness, c.smoothness, accuracy: 1e-3, "\(name) smoothness on \(device.id)")

                let image = try PNG.read(dir + "/" + c.png)
                let tiles = try Grid.tiles(of: image, tile: 32)
                XCTAssertEqual(tiles.rows, c.shape[0])
                XCTAssertEqual(tiles.cols, c.shape[1])
                let fromPNG = try metric.score(tiles.values, interpolations: tiles.rows, steps: tiles.cols)
                XCTAssertEqual(fromPNG.meanDistance, c.png_mean_distance, accuracy: 1e-6, "\(name) PNG mean distance on \(device.id)")
                XCTAssertEqual(fromPNG.smoothness, c.png_smoothness, accuracy: 1e-3, "\(name) PNG smoothness on \(device.id)")
            }
        }
    }

    /// A grid written by the project and read back gives the same tiles to 8-bit rounding.
    func testGridRoundTrip() throws {
        var rng = TestRandom.generator(self)
        let values = (0..<(3 * 5 * 32 * 32)).map { _ in Float.random(in: -1...1, using: &rng) }
        let path = NSTemporaryDirectory() + "/acai-grid-\(UUID().uuidString).png"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNG.write(try Grid.image(tiles: values, rows: 3, cols: 5, tile: 32), to: path)
        let back = try Grid.tiles(of: try PNG.read(path), tile: 32)
        XCTAssertEqual(back.rows, 3)
        XCTAssertEqual(back.cols, 5)
        assertClose(actual: back.values, expected: values.map(Double.init), atol: 0.5 / 127.5 + 1e-6, rtol: 0,
                    context: "PNG grid round trip")
    }

    func testUnwrapMatchesNumPy() {
        // np.unwrap([0, 3, 6.2, 0.1, -3]) = [0, 3, -0.0831853, 0.1, -3]
        let u = LinesMetric.unwrap([0, 3, 6.2, 0.1, -3])
        XCTAssertEqual(u[2], 6.2 - 2 * Double.pi, accuracy: 1e-12)
        XCTAssertEqual(u[4], -3, accuracy: 1e-12)
        XCTAssertTrue(LinesMetric.smoothness([1, 1, 1]).isNaN)
        XCTAssertEqual(LinesMetric.smoothness([0, 0.5, 1.0]), 0, accuracy: 1e-12)
        XCTAssertEqual(LinesMetric.smoothness([0, 0, 1.0]), 1 - 0.5, accuracy: 1e-12)
    }
}
