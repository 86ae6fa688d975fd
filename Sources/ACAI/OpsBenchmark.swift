import ACAICPU
import Foundation

/// `acai bench ops`: times matrix products and convolutions (forward and both backward passes) at the
/// shapes of the reference lines32 model on each device, beside OpenBLAS sgemm of the same size and
/// the machine's measured sgemm peak, and reports GFLOP/s and ratios.
public enum OpsBenchmark {
    public struct ConvCase: Sendable {
        public var name: String
        public var shape: ConvShape
    }

    /// The distinct convolutions of the lines32 encoder and decoder (depth 16, latent 16, 32×32 → 2×2),
    /// batch 64.
    public static func lines32Convolutions(batch: Int = 64) -> [ConvCase] {
        let layers: [(String, Int, Int, Int, Int)] = [  // name, size, cin, cout, kernel
            ("enc in 1x1", 32, 1, 16, 1), ("enc s0", 32, 16, 16, 3), ("enc s1a", 16, 16, 32, 3),
            ("enc s1b", 16, 32, 32, 3), ("enc s2a", 8, 32, 64, 3), ("enc s2b", 8, 64, 64, 3),
            ("enc s3a", 4, 64, 128, 3), ("enc s3b", 4, 128, 128, 3), ("enc top", 2, 128, 256, 3),
            ("enc latent", 2, 256, 16, 3), ("dec s3a", 2, 16, 128, 3), ("dec s2a", 4, 128, 64, 3),
            ("dec s1a", 8, 64, 32, 3), ("dec s0a", 16, 32, 16, 3), ("dec out", 32, 16, 1, 3),
        ]
        return layers.map { name, size, cin, cout, k in
            ConvCase(name: name, shape: ConvShape(batch: batch, height: size, width: size, inChannels: cin,
                                                  outChannels: cout, kernel: k))
        }
    }

    public struct Row: Sendable {
        public var device: String
        public var operation: String
        public var shape: String
        public var milliseconds: Double
        public var gflops: Double
        /// OpenBLAS sgemm GFLOP/s for the product of the same size (m = n·h·w, n = cout, k = k²·cin).
        public var blasSameSizeGflops: Double
    }

    public struct Report: Sendable {
        public var rows: [Row]
        public var sgemm512Gflops: Double
        public var peakGflops: Double
        public var blas: String

        public func markdown() -> String {
            var out = "OpenBLAS (\(blas)): sgemm 512³ \(fmt(sgemm512Gflops)) GFLOP/s; measured peak (sgemm 2048³) \(fmt(peakGflops)) GFLOP/s\n\n"
            out += "| device | op | shape | ms | GFLOP/s | vs sgemm same size | vs sgemm 512³ |\n"
            out += "|---|---|---|---:|---:|---:|---:|\n"
            for r in rows {
                out += "| \(r.device) | \(r.operation) | \(r.shape) | \(String(format: "%.3f", r.milliseconds)) | \(fmt(r.gflops)) | "
                    + "\(String(format: "%.2f", r.gflops / r.blasSameSizeGflops)) | \(String(format: "%.2f", r.gflops / sgemm512Gflops)) |\n"
            }
            // Totals per device over the whole set of convolutions (one training step's worth of each layer).
            var byDevice: [String: (ms: Double, flops: Double)] = [:]
            for r in rows where r.operation.hasPrefix("conv") {
                byDevice[r.device, default: (0, 0)].ms += r.milliseconds
                byDevice[r.device, default: (0, 0)].flops += r.gflops * r.milliseconds / 1e3
            }
            if !byDevice.isEmpty {
                out += "\n| device | all convolutions ms | GFLOP/s | vs sgemm 512³ |\n|---|---:|---:|---:|\n"
                for (device, t) in byDevice.sorted(by: { $0.key < $1.key }) {
                    let g = t.flops / (t.ms / 1e3)
                    out += "| \(device) | \(String(format: "%.2f", t.ms)) | \(fmt(g)) | \(String(format: "%.2f", g / sgemm512Gflops)) |\n"
                }
                if let cpu = byDevice["cpu"] {
                    for (device, t) in byDevice where device != "cpu" {
                        out += "\n\(device) takes \(String(format: "%.2f", t.ms / cpu.ms))x the CPU device's time over all convolutions.\n"
                    }
                }
            }
            return out
        }

        private func fmt(_ x: Double) -> String { String(format: "%.1f", x) }
    }

    /// Runs the benchmark on `devices`. `repeats` timed runs per case after one warm-up; the median is kept.
    /// `activation`: the convolutions' epilogue (forward) and act'(y) mask (backward, from the saved y).
    public static func run(devices: [any Device], batch: Int = 64, repeats: Int = 5,
                           activation: Activation = .identity, progress: (String) -> Void = { _ in }) throws -> Report {
        progress("measuring OpenBLAS sgemm")
        let s512 = BLASReference.sgemmSeconds(m: 512, n: 512, k: 512, repeats: repeats)
        let s2048 = BLASReference.sgemmSeconds(m: 2048, n: 2048, k: 2048, repeats: 3)
        let g512 = 2 * pow(512.0, 3) / s512 / 1e9
        let peak = max(2 * pow(2048.0, 3) / s2048 / 1e9, g512)
        var blasCache: [String: Double] = [:]
        func blasGflops(_ m: Int, _ n: Int, _ k: Int) -> Double {
            let key = "\(m)x\(n)x\(k)"
            if let g = blasCache[key] { return g }
            let g = 2 * Double(m) * Double(n) * Double(k) / BLASReference.sgemmSeconds(m: m, n: n, k: k, repeats: repeats) / 1e9
            blasCache[key] = g
            return g
        }

        var rows: [Row] = []
        for device in devices {
            progress("benchmarking \(device.id)")
            // Matrix products: the square reference and the probe/dense shapes of the models.
            for (m, n, k) in [(512, 512, 512), (batch, 10, 64), (batch * 16, 512, 160)] {
                var seed: UInt64 = 1
                let a = try Tensor.random([m, k], .normal, seed: seed, on: device); seed += 1
                let b = try Tensor.random([k, n], .normal, seed: seed, on: device)
                let c = try Tensor.empty([m, n], on: device)
                let op = Op.gemm(a: a.buffer, b: b.buffer, c: c.buffer, shape: GemmShape(m: m, n: n, k: k))
                let t = try time(device: device, repeats: repeats) { try device.run(op) }
                rows.append(Row(device: device.id, operation: "gemm", shape: "\(m)x\(n)x\(k)", milliseconds: t * 1e3,
                                gflops: op.flops / t / 1e9, blasSameSizeGflops: blasGflops(m, n, k)))
            }
            for c in lines32Convolutions(batch: batch) {
                let s = c.shape
                let x = try Tensor.random([s.batch, s.height, s.width, s.inChannels], .normal, seed: 11, on: device)
                let w = try Tensor.random([s.kernel, s.kernel, s.inChannels, s.outChannels], .normal, seed: 12, on: device)
                let bias = try Tensor.random([s.outChannels], .normal, seed: 13, on: device)
                let y = try Tensor.random([s.batch, s.height, s.width, s.outChannels], .normal, seed: 14, on: device)
                let dy = try Tensor.random(y.shape, .normal, seed: 15, on: device)
                let dx = try Tensor.empty(x.shape, on: device), dw = try Tensor.empty(w.shape, on: device)
                let ops: [(String, Op)] = [
                    ("conv fwd", .conv2d(x: x.buffer, w: w.buffer, bias: bias.buffer, y: y.buffer, shape: s,
                                                 activation: activation)),
                    ("conv dx", .conv2dBackwardInput(dy: dy.buffer, w: w.buffer, dx: dx.buffer, shape: s,
                                                             activation: activation, output: activation.isIdentity ? nil : y.buffer)),
                    ("conv dw", .conv2dBackwardFilter(x: x.buffer, dy: dy.buffer, dw: dw.buffer,
                                                              db: activation.isIdentity ? nil : bias.buffer, shape: s,
                                                              activation: activation, output: activation.isIdentity ? nil : y.buffer,
                                                              accumulate: false)),
                ]
                let same = blasGflops(s.batch * s.height * s.width, s.outChannels, s.kernel * s.kernel * s.inChannels)
                for (name, op) in ops {
                    let t = try time(device: device, repeats: repeats) { try device.run(op) }
                    rows.append(Row(device: device.id, operation: name,
                                    shape: "\(c.name) \(s.height)²·\(s.inChannels)→\(s.outChannels) \(s.kernel)x\(s.kernel)",
                                    milliseconds: t * 1e3, gflops: op.flops / t / 1e9, blasSameSizeGflops: same))
                }
            }
        }
        return Report(rows: rows, sgemm512Gflops: g512, peakGflops: peak, blas: BLASReference.description)
    }

    /// Median wall time of `body` (synchronised) over `repeats` runs after one warm-up run.
    static func time(device: any Device, repeats: Int, _ body: () throws -> Void) throws -> Double {
        try body()
        try device.synchronize()
        var samples: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let start = monotonicNanoseconds()
            try body()
            try device.synchronize()
            samples.append(Double(monotonicNanoseconds() - start) / 1e9)
        }
        return samples.sorted()[samples.count / 2]
    }
}
