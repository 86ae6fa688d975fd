@_exported import ACAIDevice

/// A dense float32 tensor living on a device. Values stay on the device until `toArray()` or
/// `item()` asks for them. A tensor built from parameters carries a gradient node, so `gradients(of:wrt:)`
/// can run reverse-mode differentiation over the graph that produced it.
public struct Tensor {
    public let shape: [Int]
    public let buffer: DeviceBuffer
    public let device: any Device
    let node: GradNode?
    /// On a gradient: the only rows of axis 0 that may be nonzero (see `RowSupport`).
    var rowSupport: RowSupport?

    init(shape: [Int], buffer: DeviceBuffer, device: any Device, node: GradNode? = nil,
         rowSupport: RowSupport? = nil) {
        self.shape = shape
        self.buffer = buffer
        self.device = device
        self.node = node
        self.rowSupport = rowSupport
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// True when gradients can flow back through this tensor to some parameter.
    public var requiresGradient: Bool { node != nil }

    /// The same values with no gradient history: gradients stop here (stop-gradient).
    public func detached() -> Tensor { Tensor(shape: shape, buffer: buffer, device: device, rowSupport: rowSupport) }

    // MARK: creation

    /// A tensor with the given host values.
    public init(shape: [Int], values: [Float], on device: any Device) throws {
        guard shape.reduce(1, *) == values.count else {
            throw DeviceError.invalidArgument("tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        }
        self.init(shape: shape, buffer: try device.upload(values), device: device)
    }

    /// A tensor with unspecified contents (every op writes all of its output).
    public static func empty(_ shape: [Int], on device: any Device) throws -> Tensor {
        Tensor(shape: shape, buffer: try device.allocate(shape.reduce(1, *)), device: device)
    }

    public static func full(_ shape: [Int], _ value: Float, on device: any Device) throws -> Tensor {
        let t = try empty(shape, on: device)
        try device.run(.fill(out: t.buffer, value: value))
        return t
    }

    public static func zeros(_ shape: [Int], on device: any Device) throws -> Tensor { try full(shape, 0, on: device) }

    /// Counter-based random values: the same (seed, offset) gives the same numbers on every device.
    public static func random(_ shape: [Int], _ distribution: RandomDistribution, seed: UInt64, offset: UInt64 = 0,
                              on device: any Device) throws -> Tensor {
        let t = try empty(shape, on: device)
        try device.run(.random(distribution, out: t.buffer, seed: seed, offset: offset))
        return t
    }

    // MARK: reading back

    public func toArray() throws -> [Float] {
        let values = try device.read(buffer)
        return Array(values.prefix(count))
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw DeviceError.invalidArgument("item() needs one element, tensor has shape \(shape)") }
        return try toArray()[0]
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(\(shape), \(device.id)\(requiresGradient ? ", grad" : ""))" }
}

extension Tensor {
    /// Copies the values into `target`, which has as many elements (no gradient flows).
    public func copy(into target: Tensor) throws {
        guard target.count == count else {
            throw DeviceError.invalidArgument("copy of \(shape) into \(target.shape): element counts differ")
        }
        if count == 0 { return }
        try device.run(.copyAxisRange(src: buffer, dst: target.buffer, outer: 1, srcAxis: count, dstAxis: count,
                                      inner: 1, srcStart: 0, dstStart: 0, length: count))
    }
}
