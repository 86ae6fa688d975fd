import ACAI
import Foundation
import XCTest

/// Checks a differentiable tensor function against central finite differences of its float64 reference.
///
/// For inputs x (drawn by `makeInput`, rounded to float32 so device and reference see the same numbers)
/// and a random cotangent r, the device computes y = f(x) in float32 and the gradients of Σ r·y by
/// reverse-mode autodiff. The oracle is the float64 reference: ∂/∂x_j Σ r·ref(x) by central differences
/// with step h = 1e-5·max(1, |x_j|), whose truncation and rounding errors (~1e-10) are far below float32's.
///
/// Tolerances: the forward output as `forwardTolerance`; gradients |g − fd| ≤ 1e-4·scale + 1e-3·|fd| with
/// scale = max(1, rms(fd))·√(terms) — the tinygrad gradient rule (atol 1e-4, rtol 1e-3), widened by √terms
/// for gradients that are sums over `terms` products (matmul, convolution, reductions).
public struct GradientCase {
    public var name: String
    public var shapes: [[Int]]
    /// Draws input `index` of `shape`; the default is uniform in ±[0.1, 2] (away from kinks and zero).
    public var makeInput: (_ index: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double]
    public var forward: ([Tensor]) throws -> Tensor
    public var reference: ([[Double]]) -> [Double]
    /// Which inputs to differentiate (default: all).
    public var differentiable: [Bool]?
    public var forwardTolerance: Tolerance
    /// Number of terms summed into one gradient element (scales the absolute tolerance by √terms).
    public var terms: Int

    public init(_ name: String, shapes: [[Int]], forwardTolerance: Tolerance = .transcendental, terms: Int = 1,
                differentiable: [Bool]? = nil,
                makeInput: @escaping (_ index: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double] = GradientCase.awayFromZero,
                forward: @escaping ([Tensor]) throws -> Tensor, reference: @escaping ([[Double]]) -> [Double]) {
        self.name = name
        self.shapes = shapes
        self.forwardTolerance = forwardTolerance
        self.terms = terms
        self.differentiable = differentiable
        self.makeInput = makeInput
        self.forward = forward
        self.reference = reference
    }

    /// Uniform in [-2, -0.1] ∪ [0.1, 2].
    public static func awayFromZero(_ index: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double] {
        (0..<shape.reduce(1, *)).map { _ in
            let m = Double.random(in: 0.1...2, using: &rng)
            return Bool.random(using: &rng) ? m : -m
        }
    }

    /// Uniform in [0.2, 2] (log, sqrt, reciprocal, division).
    public static func positive(_ index: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double] {
        (0..<shape.reduce(1, *)).map { _ in Double.random(in: 0.2...2, using: &rng) }
    }
}

/// Runs `gradientCase` on `device`: forward against the reference, gradients against finite differences.
public func checkGradients(_ gradientCase: GradientCase, on device: any Device, seed: UInt64,
                           file: StaticString = #filePath, line: UInt = #line) throws {
    var rng = SeededGenerator(seed: seed)
    let inputs: [[Double]] = gradientCase.shapes.enumerated().map { i, shape in
        gradientCase.makeInput(i, shape, &rng).map { Double(Float($0)) }
    }
    let expected = gradientCase.reference(inputs)
    let cotangent: [Double] = expected.map { _ in Double(Float(Double.random(in: 0.25...1, using: &rng) * (Bool.random(using: &rng) ? 1 : -1))) }

    let params = try zip(gradientCase.shapes, inputs).enumerated().map { i, pair in
        Parameter(name: "x\(i)", try Tensor(shape: pair.0, values: pair.1.map(Float.init), on: device))
    }
    let launchesBefore = device.launchCount
    let y = try gradientCase.forward(params.map(\.value))
    let context = "\(gradientCase.name) on \(device.id)"
    assertClose(actual: try y.toArray(), expected: expected, tolerance: gradientCase.forwardTolerance,
                context: "\(context) forward", file: file, line: line)
    let r = try Tensor(shape: y.shape, values: cotangent.map(Float.init), on: device)
    let loss = try (y * r).sum()
    let grads = try gradients(of: loss, wrt: params)
    XCTAssertGreaterThan(device.launchCount, launchesBefore, "\(context): no work ran on the device", file: file, line: line)

    func objective(_ xs: [[Double]]) -> Double {
        zip(gradientCase.reference(xs), cotangent).reduce(0) { $0 + $1.0 * $1.1 }
    }
    for (i, input) in inputs.enumerated() where gradientCase.differentiable?[i] ?? true {
        var fd = [Double](repeating: 0, count: input.count)
        var xs = inputs
        for j in 0..<input.count {
            let h = 1e-5 * max(1, abs(input[j]))
            xs[i][j] = input[j] + h
            let plus = objective(xs)
            xs[i][j] = input[j] - h
            let minus = objective(xs)
            xs[i][j] = input[j]
            fd[j] = (plus - minus) / (2 * h)
        }
        let rms = (fd.reduce(0) { $0 + $1 * $1 } / Double(max(fd.count, 1))).squareRoot()
        let atol = 1e-4 * max(1, rms) * Double(gradientCase.terms).squareRoot()
        assertClose(actual: try grads[i].toArray(), expected: fd, atol: atol, rtol: 1e-3,
                    context: "\(context) gradient of input \(i)", file: file, line: line)
    }
}
