import ACAIDevice
import CBLAS
import Foundation

/// The host backend: buffers are 64-byte aligned host allocations, products and some convolutions go
/// through OpenBLAS, everything else is Swift SIMD loops spread over the cores. `run` is synchronous, so
/// `synchronize()` has nothing to wait for.
public final class CPUDevice: Device, @unchecked Sendable {
    public let id = "cpu"
    /// Cores, threads, the BLAS and the convolution tiles picked for this build (timing them on first use).
    public var description: String {
        let t = ConvTuning.shared
        return "CPU: \(Self.usableCores) cores, \(threads) threads, "
            + "BLAS \(BLASReference.description), conv tiles \(t.summary)"
    }
    public var kind: DeviceKind { .cpu }
    public let profiler: Profiler

    let pool: BufferPool
    /// Workers used by the Swift kernels (OpenBLAS runs its own thread pool).
    let threads: Int
    /// Reused temporary memory for padded images, packed filters, im2col tiles and partial sums.
    let scratch = ScratchArena()
    /// Convolution algorithm override for comparisons (`ACAI_CPU_CONV=direct|blas`); nil: per build and op.
    let convOverride: ConvAlgorithm?

    private let launchLock = NSLock()
    private var launches = 0
    private var reads = 0

    /// - Parameters:
    ///   - threads: workers for the Swift kernels; default: the active core count. OpenBLAS keeps its
    ///     own process-wide pool (`OPENBLAS_NUM_THREADS`), which one device must not change for others.
    ///   - memoryLimitBytes: cap on live buffer bytes; default `ACAI_MEMORY_LIMIT` (bytes) if set,
    ///     else the physical memory.
    public init(threads: Int? = nil, memoryLimitBytes: Int? = nil) {
        let environment = ProcessInfo.processInfo.environment
        let cores = Self.usableCores
        self.threads = max(1, threads ?? cores)
        let limit = memoryLimitBytes
            ?? environment["ACAI_MEMORY_LIMIT"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            ?? Int(clamping: ProcessInfo.processInfo.physicalMemory)
        pool = BufferPool(
            deviceName: "cpu", limitBytes: limit, cacheLimitBytes: limit / 4,
            allocate: { bytes in allocateHostMemory(bytes: bytes) },
            free: { handle, _ in free(handle) })
        profiler = Profiler(deviceName: "cpu")
        convOverride = environment["ACAI_CPU_CONV"].flatMap(ConvAlgorithm.init(rawValue:))
    }

    /// Shares the node's cores between `processes` processes of a data-parallel run: sets OpenBLAS's
    /// process-wide pool to this process's share and returns it (the `threads` of its CPU device), so the
    /// processes of a node do not each start a thread per core.
    /// A process that mpirun (or taskset) bound to some cores already has its share: it uses those.
    public static func shareCores(among processes: Int) -> Int {
        let online = ProcessInfo.processInfo.activeProcessorCount
        let share = usableCores < online ? usableCores : max(1, online / max(processes, 1))
        openblas_set_num_threads(Int32(share))
        return share
    }

    /// The cores this process may run on (its affinity mask: mpirun binds each process to its cores, taskset
    /// restricts a process), at most the online cores.
    public static var usableCores: Int {
        let online = ProcessInfo.processInfo.activeProcessorCount
        #if os(Linux)
        // /proc/self/status: "Cpus_allowed:\t<hex mask, comma-separated 32-bit groups>".
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return online }
        let allowed = line.dropFirst("Cpus_allowed:".count).reduce(0) { count, c in
            count + (c.hexDigitValue?.nonzeroBitCount ?? 0)
        }
        return allowed > 0 ? min(online, allowed) : online
        #else
        return online
        #endif
    }

    // MARK: Memory

    public func allocate(_ count: Int) throws -> DeviceBuffer { try pool.allocate(count) }

    public func write(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        try checkOwned(buffer, "write")
        guard values.count == buffer.count else {
            throw DeviceError.invalidArgument("write: \(values.count) values for a buffer of \(buffer.count) floats")
        }
        if let base = values.baseAddress, values.count > 0 {
            buffer.floats.update(from: base, count: values.count)
        }
    }

    /// The CPU copies at once, so an upload is a write (and waits for nothing).
    public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        try write(values, to: buffer)
    }

    public var viewAlignment: Int { 1 }

    public func view(of buffer: DeviceBuffer, offset: Int, count: Int) throws -> DeviceBuffer {
        try checkOwned(buffer, "view")
        guard buffer.parent == nil, offset >= 0, count >= 0, offset + count <= buffer.count else {
            throw DeviceError.invalidArgument("view of floats \(offset)..<\(offset + count) of a buffer of \(buffer.count) floats\(buffer.parent == nil ? "" : " that is itself a view")")
        }
        return DeviceBuffer(viewOf: buffer, offset: offset, count: count,
                            handle: buffer.handle + offset * MemoryLayout<Float>.stride, release: nil)
    }

    /// Reads are the CPU device's only waits (its ops finish before `run` returns).
    public var synchronizationCount: Int { launchLock.withLock { reads } }

    public func read(_ buffer: DeviceBuffer, into values: UnsafeMutableBufferPointer<Float>) throws {
        try checkOwned(buffer, "read")
        launchLock.withLock { reads += 1 }
        guard values.count == buffer.count else {
            throw DeviceError.invalidArgument("read: room for \(values.count) values from a buffer of \(buffer.count) floats")
        }
        if let base = values.baseAddress, values.count > 0 {
            base.update(from: buffer.floats, count: values.count)
        }
    }

    public func synchronize() throws {}

    public var memory: MemoryStats { pool.memory }

    public func clearCache() {
        pool.clearCache()
        scratch.clear()
    }

    public var launchCount: Int { launchLock.withLock { launches } }

    private func checkOwned(_ buffer: DeviceBuffer, _ what: String) throws {
        guard buffer.pool === pool else {
            throw DeviceError.invalidArgument("\(what): the buffer belongs to another device, not \(id)")
        }
    }

    // MARK: Dispatch

    public func run(_ op: Op) throws {
        try op.validate()
        for buffer in op.buffers where buffer.pool !== pool {
            throw DeviceError.invalidArgument("\(op.name): a buffer belongs to another device, not \(id)")
        }
        let start = profiler.enabled ? monotonicNanoseconds() : 0
        try execute(op)
        launchLock.withLock { launches += 1 }
        if profiler.enabled {
            let end = monotonicNanoseconds()
            profiler.record(.init(name: op.name, startNs: start, durationNs: end - start, flops: op.flops,
                                  bytes: op.bytes))
        }
    }

    /// The CPU runs ops as they come: the host work per op is small next to the op itself.
    public func prepare(_ ops: [Op]) throws -> any PreparedOps { SequentialOps(device: self, ops: ops) }

    /// The one exhaustive switch: a new `Op` case does not compile until it has a CPU implementation.
    private func execute(_ op: Op) throws {
        let parallel = Parallel(threads: threads)
        switch op {
        case let .fill(out, value):
            CPUElementwise.fill(out.floats, count: out.count, value: value, parallel)
        case let .unary(function, x, out, alpha, beta):
            CPUElementwise.unary(function, x.floats, out.floats, count: out.count, alpha: alpha, beta: beta, parallel)
        case let .binary(function, a, b, out, layout, alpha):
            CPUElementwise.binary(function, a.floats, b.floats, out.floats, layout: layout, alpha: alpha, parallel)
        case let .reduceSum(x, out, layout):
            CPUReduce.sum(x.floats, out.floats, layout: layout, scratch: scratch, parallel)
        case let .argReduce(x, out, outer, axis, inner, findMax):
            CPUReduce.argReduce(x.floats, out.floats, outer: outer, axis: axis, inner: inner, findMax: findMax,
                                parallel)
        case let .gemm(a, b, c, shape):
            CPUGemm.gemm(a.floats, b.floats, c.floats, shape)
        case let .conv2d(x, w, bias, y, shape, activation):
            try convolution(shape).forward(x: x.floats, w: w.floats, bias: bias?.floats, y: y.floats,
                                           activation: activation)
        case let .conv2dBackwardInput(dy, w, dx, shape, activation, output):
            try convolution(shape).backwardInput(dy: dy.floats, w: w.floats, dx: dx.floats, activation: activation,
                                                 output: output.map { UnsafePointer($0.floats) })
        case let .conv2dBackwardFilter(x, dy, dw, db, shape, activation, output, accumulate):
            try convolution(shape).backwardFilter(x: x.floats, dy: dy.floats, dw: dw.floats, db: db?.floats,
                                                  activation: activation,
                                                  output: output.map { UnsafePointer($0.floats) },
                                                  accumulate: accumulate)
        case let .avgPool2x2(x, y, shape):
            CPUPool.avgPool(x.floats, y.floats, shape, parallel)
        case let .avgPool2x2Backward(dy, dx, shape):
            CPUPool.avgPoolBackward(dy.floats, dx.floats, shape, parallel)
        case let .upsample2x(x, y, shape):
            CPUPool.upsample(x.floats, y.floats, shape, parallel)
        case let .upsample2xBackward(dy, dx, shape):
            CPUPool.upsampleBackward(dy.floats, dx.floats, shape, parallel)
        case let .copyAxisRange(src, dst, outer, srcAxis, dstAxis, inner, srcStart, dstStart, length):
            CPUElementwise.copyAxisRange(src.floats, dst.floats, outer: outer, srcAxis: srcAxis, dstAxis: dstAxis,
                                         inner: inner, srcStart: srcStart, dstStart: dstStart, length: length,
                                         parallel)
        case let .reverseAxis(x, out, outer, axis, inner):
            CPUElementwise.reverseAxis(x.floats, out.floats, outer: outer, axis: axis, inner: inner, parallel)
        case let .gatherRows(table, index, out, rows, tableRows, columns):
            try CPUElementwise.gatherRows(table.floats, index.floats, out.floats, rows: rows, tableRows: tableRows,
                                          columns: columns, parallel)
        case let .oneHot(index, out, rows, depth):
            try CPUElementwise.oneHot(index.floats, out.floats, rows: rows, depth: depth, parallel)
        case let .softmaxCrossEntropy(logits, labels, loss, rows, classes):
            CPUReduce.softmaxCrossEntropy(logits.floats, labels.floats, loss.floats, rows: rows, classes: classes,
                                          parallel)
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, rows, classes):
            CPUReduce.softmaxCrossEntropyBackward(logits.floats, labels.floats, dloss.floats, dlogits.floats,
                                                  rows: rows, classes: classes, parallel)
        case let .random(distribution, out, seed, offset):
            CPUElementwise.random(distribution, out.floats, count: out.count, seed: seed, offset: offset, parallel)
        case let .adam(param, grad, m, v, hyper):
            CPUElementwise.adam(param: param.floats, grad: grad.floats, m: m.floats, v: v.floats, count: param.count,
                                hyper, parallel)
        case let .squaredErrorMean(a, target, loss, range):
            CPUReduce.squaredErrorMean(a.floats, target: target?.floats, loss: loss.floats, range)
        case let .squaredErrorMeanBackward(a, target, dloss, da, range, accumulate):
            CPUReduce.squaredErrorMeanBackward(a.floats, target: target?.floats, dloss: dloss.floats, da: da.floats,
                                               range, accumulate: accumulate, parallel)
        case let .accumulateScalars(sources, out):
            for (i, source) in sources.enumerated() { out.floats[i] += source.floats[0] }
        }
    }

    private func convolution(_ shape: ConvShape) -> CPUConvolution {
        CPUConvolution(shape: shape, parallel: Parallel(threads: threads), scratch: scratch, override: convOverride)
    }
}

extension DeviceBuffer {
    /// The CPU handle is the host allocation itself.
    var floats: UnsafeMutablePointer<Float> { handle.assumingMemoryBound(to: Float.self) }
}
