import ACAIImaging
import ACAITestSupport
import Foundation
import XCTest

/// Animated GIFs through giflib, read back through giflib.
final class GIFTests: XCTestCase {
    func path(_ name: String) -> String {
        let p = NSTemporaryDirectory() + "acai-gif-\(UUID().uuidString)-\(name)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
        return p
    }

    func testGreyFramesRoundTripExactlyAndRGBWithinThePalette() throws {
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        let grey = (0..<5).map { _ in Image8(width: 13, height: 7, channels: 1, pixels: (0..<91).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        let g = path("grey.gif")
        try GIF.write(grey, delay: 12, to: g)
        let back = try GIF.read(g)
        XCTAssertEqual(back.frames.count, 5)
        XCTAssertEqual(back.delays, [12, 12, 12, 12, 12])
        for (a, b) in zip(grey, back.frames) {
            XCTAssertEqual(b.width, 13)
            XCTAssertEqual(b.height, 7)
            XCTAssertEqual((0..<91).map { b.pixels[3 * $0] }, a.pixels)
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: g))
        XCTAssertEqual(Array(data.prefix(6)), Array("GIF89a".utf8))
        XCTAssertNotNil(data.range(of: Data("NETSCAPE2.0".utf8)), "loops forever")

        let rgb = (0..<3).map { _ in Image8(width: 9, height: 4, channels: 3, pixels: (0..<108).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        let c = path("rgb.gif")
        try GIF.write(rgb, to: c)
        let colour = try GIF.read(c)
        for (a, b) in zip(rgb, colour.frames) {
            for k in 0..<108 {
                let bound = k % 3 == 1 ? 22 : 26  // half a step of the 7 green / 6 red and blue levels
                XCTAssertLessThanOrEqual(abs(Int(a.pixels[k]) - Int(b.pixels[k])), bound)
            }
        }
    }

    func testBadFramesAreRefused() {
        let p = path("bad.gif")
        XCTAssertThrowsError(try GIF.write([], to: p))
        let a = Image8(width: 2, height: 2, channels: 1, pixels: [0, 1, 2, 3])
        let b = Image8(width: 3, height: 2, channels: 1, pixels: [0, 1, 2, 3, 4, 5])
        XCTAssertThrowsError(try GIF.write([a, b], to: p)) { XCTAssertTrue("\($0)".contains("frame 1"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
        XCTAssertThrowsError(try GIF.read(p)) { XCTAssertTrue("\($0)".contains(p), "\($0)") }
    }
}
