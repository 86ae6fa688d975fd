/// The parameters of one optimiser in four flat device buffers: values, gradients and Adam's two moments.
/// Each parameter is a view (by offset) into the flat buffers, so an Adam update is one op over all of them
/// and a gradient all-reduce is one call over `gradients`. Offsets are aligned for the device's views; the
/// gaps between parameters are zero in every buffer and stay zero under Adam.
public final class ParameterStore {
    public let parameters: [Parameter]
    public let device: any Device
    /// Where each parameter starts in the flat buffers, in floats.
    public let offsets: [Int]
    /// Floats in each flat buffer (the parameters with their alignment gaps).
    public let count: Int
    public let values: DeviceBuffer
    public let gradients: DeviceBuffer
    public let firstMoments: DeviceBuffer
    public let secondMoments: DeviceBuffer
    /// Per parameter: its gradient, first and second moment as views of the flat buffers.
    public let gradientViews: [Tensor]
    public let firstMomentViews: [Tensor]
    public let secondMomentViews: [Tensor]
    /// The seed of a backward pass into this store, d loss / d loss = 1, made once (not every step).
    let unitSeed: Tensor

    /// Moves `parameters` (which must live on one device and belong to no other store) into flat buffers.
    public init(parameters: [Parameter]) throws {
        guard let first = parameters.first else {
            throw DeviceError.invalidArgument("a parameter store needs at least one parameter")
        }
        let device = first.device
        self.parameters = parameters
        self.device = device
        let alignment = max(device.viewAlignment, 1)
        var offsets: [Int] = []
        var end = 0
        for p in parameters {
            guard p.device === device else {
                throw DeviceError.invalidArgument("parameter \(p.name) lives on \(p.device.id), the others on \(device.id)")
            }
            guard p.buffer.parent == nil else {
                throw DeviceError.invalidArgument("parameter \(p.name) already belongs to a parameter store")
            }
            offsets.append(end)
            end = (end + max(p.count, 1) + alignment - 1) / alignment * alignment
        }
        self.offsets = offsets
        let total = max(end, 1)
        count = total
        func flat() throws -> DeviceBuffer {
            let buffer = try device.allocate(total)
            try device.run(.fill(out: buffer, value: 0))
            return buffer
        }
        let values = try flat(), gradients = try flat(), firstMoments = try flat(), secondMoments = try flat()
        self.values = values
        self.gradients = gradients
        self.firstMoments = firstMoments
        self.secondMoments = secondMoments
        func views(_ buffer: DeviceBuffer) throws -> [Tensor] {
            try zip(parameters, offsets).map { p, offset in
                Tensor(shape: p.shape, buffer: try device.view(of: buffer, offset: offset, count: p.count), device: device)
            }
        }
        let valueViews = try views(values)
        gradientViews = try views(gradients)
        firstMomentViews = try views(firstMoments)
        secondMomentViews = try views(secondMoments)
        unitSeed = try Tensor.full([1], 1, on: device)
        for (p, view) in zip(parameters, valueViews) {
            try device.run(.copyAxisRange(src: p.buffer, dst: view.buffer, outer: 1, srcAxis: p.count, dstAxis: p.count,
                                          inner: 1, srcStart: 0, dstStart: 0, length: p.count))
            p.rebind(to: view.buffer)
        }
    }
}
