import Foundation

/// Line charts rendered to PNG without any plotting library: one panel per metric (losses, Mean Distance,
/// Smoothness, accuracy) against training samples, with axis ticks and labels in a built-in 5×7 font.
public struct LineChart {
    public struct Series {
        public var name: String
        public var x: [Double]
        public var y: [Double]
        public init(name: String, x: [Double], y: [Double]) { self.name = name; self.x = x; self.y = y }
    }

    public struct Panel {
        public var title: String
        public var series: [Series]
        public var logY: Bool
        public init(title: String, series: [Series], logY: Bool = false) {
            self.title = title; self.series = series; self.logY = logY
        }
    }

    public var panels: [Panel]
    public var xLabel: String
    public var panelWidth = 520
    public var panelHeight = 260

    public init(panels: [Panel], xLabel: String) { self.panels = panels; self.xLabel = xLabel }

    static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127),
    ]

    /// The chart as an RGB image, panels stacked two per row.
    public func render() -> Image8 {
        let columns = min(2, max(panels.count, 1))
        let rows = (panels.count + columns - 1) / columns
        var canvas = Canvas(width: columns * panelWidth, height: max(rows, 1) * panelHeight)
        for (i, panel) in panels.enumerated() {
            draw(panel, on: &canvas, x0: (i % columns) * panelWidth, y0: (i / columns) * panelHeight)
        }
        return Image8(width: canvas.width, height: canvas.height, channels: 3, pixels: canvas.pixels)
    }

    private func draw(_ panel: Panel, on canvas: inout Canvas, x0: Int, y0: Int) {
        let left = x0 + 70, right = x0 + panelWidth - 12, top = y0 + 24, bottom = y0 + panelHeight - 40
        canvas.text(panel.title, x: x0 + 70, y: y0 + 8, color: (0, 0, 0))
        func transform(_ v: Double) -> Double? {
            guard v.isFinite else { return nil }
            if panel.logY { return v > 0 ? log10(v) : nil }
            return v
        }
        let xs = panel.series.flatMap(\.x).filter(\.isFinite)
        let ys = panel.series.flatMap { $0.y.compactMap(transform) }
        guard let xMin = xs.min(), let xMax = xs.max(), var yMin = ys.min(), var yMax = ys.max() else {
            canvas.text("no data yet", x: left + 10, y: (top + bottom) / 2, color: (120, 120, 120))
            return
        }
        if yMax - yMin < 1e-12 { yMin -= 0.5; yMax += 0.5 }
        let pad = (yMax - yMin) * 0.05
        yMin -= pad; yMax += pad
        let xSpan = max(xMax - xMin, 1e-12)
        func px(_ x: Double) -> Int { left + Int(Double(right - left) * (x - xMin) / xSpan) }
        func py(_ y: Double) -> Int { bottom - Int(Double(bottom - top) * (y - yMin) / (yMax - yMin)) }
        // Frame, grid and ticks.
        for k in 0...4 {
            let yv = yMin + (yMax - yMin) * Double(k) / 4
            let y = py(yv)
            canvas.line(left, y, right, y, color: (225, 225, 225))
            let label = panel.logY ? shortNumber(pow(10, yv)) : shortNumber(yv)
            canvas.text(label, x: x0 + 4, y: y - 3, color: (60, 60, 60))
            let xv = xMin + xSpan * Double(k) / 4
            let x = px(xv)
            canvas.line(x, bottom, x, bottom + 4, color: (0, 0, 0))
            canvas.text(shortNumber(xv), x: x - 12, y: bottom + 8, color: (60, 60, 60))
        }
        canvas.line(left, top, left, bottom, color: (0, 0, 0))
        canvas.line(left, bottom, right, bottom, color: (0, 0, 0))
        canvas.text(xLabel, x: (left + right) / 2 - 3 * xLabel.count, y: bottom + 22, color: (60, 60, 60))
        for (i, s) in panel.series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            var previous: (Int, Int)?
            for (x, y) in zip(s.x, s.y) {
                guard x.isFinite, let ty = transform(y) else { previous = nil; continue }
                let p = (px(x), py(ty))
                if let q = previous { canvas.line(q.0, q.1, p.0, p.1, color: color) } else { canvas.dot(p.0, p.1, color: color) }
                previous = p
            }
            let legendY = top + 4 + 10 * i
            canvas.line(right - 120, legendY + 3, right - 108, legendY + 3, color: color)
            canvas.text(s.name, x: right - 104, y: legendY, color: color)
        }
    }
}

/// A compact label for an axis tick: 3 significant digits, scientific outside [1e-3, 1e5).
func shortNumber(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = Swift.abs(v)
    if a >= 1e5 || a < 1e-3 { return String(format: "%.1e", v) }
    if a >= 100 { return String(format: "%.0f", v) }
    if a >= 1 { return String(format: "%.2g", v).count > 4 ? String(format: "%.1f", v) : String(format: "%.3g", v) }
    return String(format: "%.3g", v)
}

struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func dot(_ x: Int, _ y: Int, color: (UInt8, UInt8, UInt8)) {
        for dy in -1...1 { for dx in -1...1 { set(x + dx, y + dy, color) } }
    }

    /// Bresenham line.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: (UInt8, UInt8, UInt8)) {
        var x = x0, y = y0
        let dx = Swift.abs(x1 - x0), dy = -Swift.abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    mutating func text(_ s: String, x: Int, y: Int, color: (UInt8, UInt8, UInt8)) {
        var cx = x
        for ch in s.uppercased() {
            if let rows = font5x7[ch] {
                for (r, bits) in rows.enumerated() {
                    for c in 0..<5 where bits & (1 << (4 - c)) != 0 { set(cx + c, y + r, color) }
                }
            }
            cx += 6
        }
    }
}

/// 5×7 glyphs, one byte per row, bit 4 the leftmost pixel.
let font5x7: [Character: [UInt8]] = [
    "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
    "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
    "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
    "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
    "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
    "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
    "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
    "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
    "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
    "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
    "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
    "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
    "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
    "Y": [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
    ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], "-": [0, 0, 0, 0x1F, 0, 0, 0], "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
    "_": [0, 0, 0, 0, 0, 0, 0x1F], ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0], "/": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
    "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
    ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], " ": [0, 0, 0, 0, 0, 0, 0],
]
