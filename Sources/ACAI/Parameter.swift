/// A trainable tensor. Reading `value` gives a tensor whose gradient node leads back to this parameter;
/// optimisers update the storage in place.
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public let device: any Device
    public private(set) var buffer: DeviceBuffer
    private(set) lazy var leaf: GradNode = GradNode(leafOf: self)

    public init(name: String, _ initial: Tensor) {
        self.name = name
        self.shape = initial.shape
        self.device = initial.device
        self.buffer = initial.buffer
    }

    /// The parameter as a tensor that records gradients.
    public var value: Tensor { Tensor(shape: shape, buffer: buffer, device: device, node: leaf) }

    public var count: Int { shape.reduce(1, *) }

    /// Replaces the values (checkpoint restore, copying weights).
    public func assign(_ values: [Float]) throws {
        guard values.count == count else {
            throw DeviceError.invalidArgument("parameter \(name) has \(count) values (shape \(shape)), got \(values.count)")
        }
        try device.write(values, to: buffer)
    }

    public func toArray() throws -> [Float] { try value.toArray() }

    /// Moves the parameter to other storage holding the same values (a `ParameterStore`'s view).
    func rebind(to buffer: DeviceBuffer) {
        precondition(buffer.count == count, "parameter \(name): storage of \(buffer.count) floats for \(count)")
        self.buffer = buffer
    }
}

/// Initialisers of the reference code.
public enum Initializer {
    /// "He modified" normal: std = 1/√((1 + slope²)·fanIn), for layers followed by leaky ReLU of `slope`.
    public static func heModified(_ shape: [Int], fanIn: Int, slope: Float = 0.2, seed: UInt64,
                                  on device: any Device) throws -> Tensor {
        let std = 1 / ((1 + slope * slope) * Float(fanIn)).squareRoot()
        return try Tensor.random(shape, .normal, seed: seed, on: device) * std
    }
}
