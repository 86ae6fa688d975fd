/// The compute device interface. Everything above this layer (tensors, autodiff, models, training,
/// evaluation) talks to a device only through this protocol and the `Op` table: it never sees
/// OpenCL, BLAS or host pointers.
///
/// Contract:
/// - `run(_:)` is the single dispatch point. A backend implements it with one exhaustive `switch`
///   over `Op`, so a new op is a compile error until every backend has it.
/// - Work may be asynchronous: `run` may return before the result is computed. `read` and
///   `synchronize` wait for all earlier work. Ops execute in submission order.
/// - Buffers hold float32. An op never reads an output before writing it, unless its documentation
///   says it accumulates (`beta`, Adam state, ...).
public protocol Device: AnyObject, Sendable {
    /// Short identifier, e.g. `cpu` or `opencl:0`.
    var id: String { get }
    /// Human-readable description (device name, driver, threads, BLAS).
    var description: String { get }
    var kind: DeviceKind { get }

    /// A buffer of `count` floats with unspecified contents, from the device's pool.
    /// Throws `DeviceError.outOfMemory` when the pool cap or the device memory is exhausted.
    func allocate(_ count: Int) throws -> DeviceBuffer
    /// Copies `values` into `buffer` (values.count must equal buffer.count).
    func write(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws
    /// Waits for pending work and copies the buffer back to the host.
    func read(_ buffer: DeviceBuffer, into values: UnsafeMutableBufferPointer<Float>) throws
    /// Copies `values` into `buffer` without waiting: the device keeps its own copy of the values until
    /// the copy has happened, so the caller may reuse its memory at once. Ops run after it see the values.
    func upload(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws
    /// A buffer that is floats `offset ..< offset + count` of `buffer` (an allocation, not a view), sharing
    /// its memory; ops may use it like any buffer. `offset` must be a multiple of `viewAlignment`.
    func view(of buffer: DeviceBuffer, offset: Int, count: Int) throws -> DeviceBuffer
    /// The alignment, in floats, that view offsets need (OpenCL's base-address alignment).
    var viewAlignment: Int { get }
    /// Executes one op. All buffers must come from this device.
    func run(_ op: Op) throws
    /// Gets `ops` ready to be run many times, as a replayed step plan does: a backend may work out its launches
    /// once (OpenCL sets every kernel's arguments once). Running the result runs the ops in order; their
    /// buffers must stay as they are.
    func prepare(_ ops: [Op]) throws -> any PreparedOps
    /// Waits until all submitted work has finished.
    func synchronize() throws

    var memory: MemoryStats { get }
    /// Releases pooled (unused) buffers back to the system.
    func clearCache()
    /// Per-op (CPU) or per-kernel (OpenCL) timings, when profiling is on (`ACAI_PROFILE`).
    var profiler: Profiler { get }
    /// Number of kernels (OpenCL) or op implementations (CPU) executed so far. Tests use it to prove
    /// that work really ran on the device they meant.
    var launchCount: Int { get }
    /// Number of times the host has waited for the device so far (blocking reads and writes, `synchronize`).
    /// A lean training step waits for nothing; `acai bench train` reports this per step.
    var synchronizationCount: Int { get }
}

/// Ops made ready by `Device.prepare`.
public protocol PreparedOps: AnyObject {
    func run() throws
}

/// The plain preparation: the ops, run one by one.
public final class SequentialOps: PreparedOps {
    let device: any Device
    let ops: [Op]
    public init(device: any Device, ops: [Op]) {
        self.device = device
        self.ops = ops
    }
    public func run() throws { for op in ops { try device.run(op) } }
}

public enum DeviceKind: String, Sendable {
    case cpu
    case opencl
}

extension Device {
    public func write(_ values: [Float], to buffer: DeviceBuffer) throws {
        try values.withUnsafeBufferPointer { try write($0, to: buffer) }
    }

    public func read(_ buffer: DeviceBuffer) throws -> [Float] {
        var out = [Float](repeating: 0, count: buffer.count)
        try out.withUnsafeMutableBufferPointer { try read(buffer, into: $0) }
        return out
    }

    public func upload(_ values: [Float], to buffer: DeviceBuffer) throws {
        try values.withUnsafeBufferPointer { try upload($0, to: buffer) }
    }

    /// Allocates and fills a buffer from host values.
    public func upload(_ values: [Float]) throws -> DeviceBuffer {
        let buffer = try allocate(values.count)
        try write(values, to: buffer)
        return buffer
    }
}
