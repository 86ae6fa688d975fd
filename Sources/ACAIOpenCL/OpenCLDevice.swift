import ACAIDevice
import COpenCL
import Foundation

/// The OpenCL device: one context and one in-order queue (profiling only under `ACAI_PROFILE`) on the
/// device `opencl:N`.
///
/// - `run` enqueues kernels and returns; `read` (a blocking read) and `synchronize` (`clFinish`) wait.
///   `write` is a blocking write, so the caller's memory may be reused as soon as it returns; `upload`
///   copies the values into staging memory the device owns and enqueues a non-blocking write from it.
/// - The queue is flushed every `flushInterval` launches, so a long run of small kernels keeps the
///   device busy while the host is still enqueueing.
/// - Every op runs as OpenCL kernels from `Kernels/` (see `ProgramCache` for how they are loaded and
///   built); nothing falls back to host code.
/// - Buffers come from a `BufferPool` of `cl_mem`s capped at `memoryLimitBytes`, `ACAI_MEMORY_LIMIT`,
///   or the device's global memory, in that order.
/// - With `ACAI_PROFILE` set every kernel gets an event; the timings are collected at the next `read`
///   or `synchronize`.
/// The device may be shared between threads; calls are serialised by a lock.
public final class OpenCLDevice: Device, @unchecked Sendable {
    public let id: String
    public let info: OpenCLDeviceInfo
    public let description: String
    public var kind: DeviceKind { .opencl }
    public let profiler: Profiler

    let clDevice: cl_device_id
    let context: CLContext
    let queue: CLQueue
    let programs: ProgramCache
    let pool: BufferPool

    private let lock = NSLock()
    private var launches = 0
    private var waits = 0
    private var pending: [PendingEvent] = []
    /// Host copies of non-blocking uploads, freed once their write has completed.
    private var staging: [(event: cl_event, memory: UnsafeMutableRawPointer)] = []
    private var launchesSinceFlush = 0
    static let flushInterval = 32
    /// Set while `prepare` turns ops into launches to keep instead of enqueuing them.
    private var capture: [PreparedLaunch]?
    private var currentTuning: OpenCLTuning
    /// Zeros that the convolution kernels read for taps outside the image (see `zeros`).
    private var zeroBuffer: DeviceBuffer?

    /// Opens `opencl:index` (the flat device index of `OpenCLPlatforms.list()`).
    /// `memoryLimitBytes` caps the live bytes of the buffer pool (default: `ACAI_MEMORY_LIMIT`, e.g.
    /// `512M` or `2G`, else the device's global memory).
    public init(index: Int = 0, memoryLimitBytes: Int? = nil) throws {
        let located = try OpenCLPlatforms.locate(index: index)
        let info = located.info
        self.info = info
        self.clDevice = located.device
        self.id = "opencl:\(index)"
        let context = try CLContext(device: located.device)
        self.context = context
        let profiler = Profiler(deviceName: "opencl:\(index)")
        self.profiler = profiler
        self.queue = try CLQueue(context: context, device: located.device, profiling: profiler.enabled)
        self.programs = ProgramCache(context: context, device: located.device, deviceName: info.name,
                                     driverVersion: info.driverVersion)
        // ACAI_OPENCL_TUNING=gpu|cpu picks the other device type's launch parameters (e.g. to count the GPU
        // code paths' launches on PoCL).
        switch ProcessInfo.processInfo.environment["ACAI_OPENCL_TUNING"] {
        case "gpu": self.currentTuning = OpenCLTuning.gpu(computeUnits: info.computeUnits)
        case "cpu": self.currentTuning = OpenCLTuning.defaults(for: OpenCLDeviceInfo.cpuLike(info))
        default: self.currentTuning = OpenCLTuning.defaults(for: info)
        }

        let environmentLimit = ProcessInfo.processInfo.environment["ACAI_MEMORY_LIMIT"].flatMap(parseByteCount)
        let limit = max(memoryLimitBytes ?? environmentLimit ?? info.globalMemoryBytes, 0)
        self.pool = BufferPool(
            deviceName: id, limitBytes: limit, cacheLimitBytes: limit / 2,
            allocate: { bytes in
                var err: cl_int = 0
                let mem = clCreateBuffer(context.handle, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &err)
                guard err == CL_SUCCESS, let mem else { return nil }
                return UnsafeMutableRawPointer(mem)
            },
            free: { handle, _ in clReleaseMemObject(OpaquePointer(handle)) })

        var text = "\(id): \(info.name) (\(info.vendor), \(info.type.rawValue)) on \(info.platformName), "
        text += "\(info.version), driver \(info.driverVersion), \(info.openCLCVersion), "
        text += "\(info.computeUnits) compute units, \(formatBytes(info.globalMemoryBytes)) global memory "
        text += "(max buffer \(formatBytes(info.maxAllocationBytes))), pool limit \(formatBytes(limit)); "
        text += "extensions: \(info.extensions.joined(separator: " "))"
        if let dir = programs.kernelDirectory { text += "; kernels from ACAI_KERNEL_DIR=\(dir)" }
        self.description = text
    }

    deinit {
        clFinish(queue.handle)
        for event in pending { clReleaseEvent(event.event) }
        for upload in staging {
            clReleaseEvent(upload.event)
            free(upload.memory)
        }
    }

    /// Launch parameters (see `OpenCLTuning`); settable for benchmarks.
    public var tuning: OpenCLTuning {
        get { lock.withLock { currentTuning } }
        set { lock.withLock { currentTuning = newValue } }
    }

    public var memory: MemoryStats { pool.memory }
    public func clearCache() { pool.clearCache() }
    public var launchCount: Int { lock.withLock { launches } }
    public var synchronizationCount: Int { lock.withLock { waits } }
    /// Programs built so far in this process and the seconds spent building them.
    public var programBuilds: (count: Int, seconds: Double) { programs.buildStatistics }

    public func allocate(_ count: Int) throws -> DeviceBuffer {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes > info.maxAllocationBytes {
            throw DeviceError.outOfMemory(device: id, requested: bytes, inUse: pool.memory.liveBytes,
                                          limit: info.maxAllocationBytes)
        }
        if count > Int(Int32.max) {
            throw DeviceError.invalidArgument(
                "\(id): a buffer of \(count) floats is too large (kernels index with 32-bit integers)")
        }
        return try pool.allocate(count)
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        guard let base = try hostSource(values, for: buffer, "write") else { return }
        try lock.withLock {
            waits += 1
            try clCheck(clEnqueueWriteBuffer(queue.handle, mem(buffer), cl_bool(CL_TRUE), 0, buffer.byteCount, base,
                                             0, nil, nil), "clEnqueueWriteBuffer")
            releaseFinishedUploads(all: true)
        }
    }

    /// The host values of a write or upload to `buffer`, checked (nil: nothing to copy).
    private func hostSource(_ values: UnsafeBufferPointer<Float>, for buffer: DeviceBuffer,
                            _ what: String) throws -> UnsafePointer<Float>? {
        try checkOwned(buffer, what)
        if values.isEmpty { return nil }
        guard values.count == buffer.count, let base = values.baseAddress else {
            throw DeviceError.invalidArgument(
                "\(what) to \(id): \(values.count) values for a buffer of \(buffer.count) floats")
        }
        return base
    }

    public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        guard let base = try hostSource(values, for: buffer, "upload") else { return }
        guard let copy = malloc(buffer.byteCount) else {
            throw DeviceError.outOfMemory(device: "host (staging for \(id))", requested: buffer.byteCount,
                                          inUse: 0, limit: 0)
        }
        copy.copyMemory(from: base, byteCount: buffer.byteCount)
        try lock.withLock {
            releaseFinishedUploads(all: false)
            var event: cl_event?
            let code = clEnqueueWriteBuffer(queue.handle, mem(buffer), cl_bool(CL_FALSE), 0, buffer.byteCount, copy,
                                            0, nil, &event)
            guard code == CL_SUCCESS, let event else {
                free(copy)
                try clCheck(code == CL_SUCCESS ? -1 : code, "clEnqueueWriteBuffer (non-blocking)")
                return
            }
            staging.append((event, copy))
            try flushIfDue()
        }
    }

    /// Frees the staging copies whose writes have completed (all of them after a wait on the queue).
    private func releaseFinishedUploads(all: Bool) {
        staging.removeAll { upload in
            var status: cl_int = 0
            if !all {
                clGetEventInfo(upload.event, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS),
                               MemoryLayout<cl_int>.size, &status, nil)
                guard status == CL_COMPLETE || status < 0 else { return false }
            }
            clReleaseEvent(upload.event)
            free(upload.memory)
            return true
        }
    }

    private func flushIfDue() throws {
        launchesSinceFlush += 1
        if launchesSinceFlush >= Self.flushInterval {
            launchesSinceFlush = 0
            try clCheck(clFlush(queue.handle), "clFlush")
        }
    }

    public var viewAlignment: Int { max(info.baseAddressAlignmentBytes / MemoryLayout<Float>.stride, 1) }

    public func view(of buffer: DeviceBuffer, offset: Int, count: Int) throws -> DeviceBuffer {
        try checkOwned(buffer, "view")
        guard buffer.parent == nil, offset >= 0, count > 0, offset + count <= buffer.count,
              offset % viewAlignment == 0 else {
            throw DeviceError.invalidArgument(
                "\(id): a view of floats \(offset)..<\(offset + count) of a buffer of \(buffer.count) floats "
                    + "(views start at multiples of \(viewAlignment) floats, of buffers that are not views)")
        }
        var region = cl_buffer_region(origin: offset * MemoryLayout<Float>.stride,
                                      size: count * MemoryLayout<Float>.stride)
        var err: cl_int = 0
        let sub = clCreateSubBuffer(mem(buffer), cl_mem_flags(CL_MEM_READ_WRITE),
                                    cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, &err)
        guard err == CL_SUCCESS, let sub else {
            throw DeviceError.openCL(call: "clCreateSubBuffer", code: err == CL_SUCCESS ? -1 : err)
        }
        return DeviceBuffer(viewOf: buffer, offset: offset, count: count, handle: UnsafeMutableRawPointer(sub),
                            release: { clReleaseMemObject(OpaquePointer($0)) })
    }

    public func read(_ buffer: DeviceBuffer, into values: UnsafeMutableBufferPointer<Float>) throws {
        try checkOwned(buffer, "read")
        if values.isEmpty {
            try synchronize()
            return
        }
        guard values.count == buffer.count, let base = values.baseAddress else {
            throw DeviceError.invalidArgument(
                "read from \(id): room for \(values.count) values but the buffer holds \(buffer.count) floats")
        }
        try lock.withLock {
            waits += 1
            // A blocking read on an in-order queue: every earlier command has finished when it returns.
            try clCheck(clEnqueueReadBuffer(queue.handle, mem(buffer), cl_bool(CL_TRUE), 0, buffer.byteCount, base,
                                            0, nil, nil), "clEnqueueReadBuffer")
            releaseFinishedUploads(all: true)
            try collectEvents()
        }
    }

    public func synchronize() throws {
        try lock.withLock {
            waits += 1
            try clCheck(clFinish(queue.handle), "clFinish")
            releaseFinishedUploads(all: true)
            try collectEvents()
        }
    }

    public func run(_ op: Op) throws {
        try op.validate()
        for buffer in op.buffers { try checkOwned(buffer, op.name) }
        try lock.withLock { try dispatch(op) }
    }

    /// The ops' kernel launches with their launch geometry and arguments worked out once: running them is
    /// one `clEnqueueNDRangeKernel` per launch, with no argument setting, sizing or program lookup.
    public func prepare(_ ops: [Op]) throws -> any PreparedOps {
        for op in ops {
            try op.validate()
            for buffer in op.buffers { try checkOwned(buffer, op.name) }
        }
        let launches: [PreparedLaunch] = try lock.withLock {
            capture = []
            defer { capture = nil }
            for op in ops { try dispatch(op) }
            return capture ?? []
        }
        return PreparedLaunches(device: self, launches: launches)
    }

    // MARK: - Dispatch (lock held)

    private func dispatch(_ op: Op) throws {
        let name = op.name
        switch op {
        case let .fill(out, value):
            try launchVector("elementwise.cl", "fill", count: out.count,
                             args: [.buffer(out), .int(out.count), .float(value)], name: name, op: op)

        case let .unary(function, x, out, alpha, beta):
            let n = out.count
            try need(x, n, "x", name)
            try launchVector("elementwise.cl", "unary_\(function.rawValue)", count: n,
                             args: [.buffer(x), .buffer(out), .int(n), .float(alpha), .float(beta)],
                             name: name, op: op)

        case let .binary(function, a, b, out, layout, alpha):
            try binary(function, a: a, b: b, out: out, layout: layout, alpha: alpha, name: name, op: op)

        case let .reduceSum(x, out, layout):
            try need(x, layout.inputCount, "x", name)
            try need(out, layout.outputCount, "out", name)
            try reduceSum(x: x, out: out, layout: layout, name: name, bytes: op.bytes)

        case let .argReduce(x, out, outer, axis, inner, findMax):
            try need(x, outer * axis * inner, "x", name)
            try need(out, outer * inner, "out", name)
            if axis == 0 {
                try launchVector("elementwise.cl", "fill", count: outer * inner,
                                 args: [.buffer(out), .int(outer * inner), .float(0)], name: name, op: op)
                return
            }
            try launch("reduce.cl", "arg_reduce", global: [inner, outer],
                       args: [.buffer(x), .buffer(out), .int(outer), .int(axis), .int(inner), .int(findMax ? 1 : 0)],
                       name: name, op: op)

        case let .gemm(a, b, c, shape):
            try gemm(a: a, b: b, c: c, shape: shape, name: name, op: op)

        case let .conv2d(x, w, bias, y, shape, activation):
            try checkConv(shape, name)
            try need(x, shape.batch * shape.height * shape.width * shape.inChannels, "x", name)
            try need(w, shape.kernel * shape.kernel * shape.inChannels * shape.outChannels, "w", name)
            try need(y, shape.batch * shape.height * shape.width * shape.outChannels, "y", name)
            if let bias { try need(bias, shape.outChannels, "bias", name) }
            try convForward(x: x, w: w, bias: bias, y: y, shape: shape, activation: activation, name: name, op: op)

        case let .conv2dBackwardInput(dy, w, dx, shape, activation, output):
            try checkConv(shape, name)
            try need(dy, shape.batch * shape.height * shape.width * shape.outChannels, "dy", name)
            try need(w, shape.kernel * shape.kernel * shape.inChannels * shape.outChannels, "w", name)
            try need(dx, shape.batch * shape.height * shape.width * shape.inChannels, "dx", name)
            if let output { try need(output, shape.batch * shape.height * shape.width * shape.outChannels, "output", name) }
            try convBackwardInput(dy: dy, w: w, dx: dx, shape: shape, activation: activation, output: output,
                                  name: name, op: op)

        case let .conv2dBackwardFilter(x, dy, dw, db, shape, activation, output, accumulate):
            try checkConv(shape, name)
            try need(x, shape.batch * shape.height * shape.width * shape.inChannels, "x", name)
            try need(dy, shape.batch * shape.height * shape.width * shape.outChannels, "dy", name)
            try need(dw, shape.kernel * shape.kernel * shape.inChannels * shape.outChannels, "dw", name)
            if let db { try need(db, shape.outChannels, "db", name) }
            if let output { try need(output, shape.batch * shape.height * shape.width * shape.outChannels, "output", name) }
            try convBackwardFilter(x: x, dy: dy, dw: dw, db: db, shape: shape, activation: activation, output: output,
                                   accumulate: accumulate, name: name, op: op)

        case let .avgPool2x2(x, y, shape):
            try need(x, shape.count, "x", name)
            try need(y, shape.count / 4, "y", name)
            try pool2x2("avgpool2x2", input: x, output: y, outputWidth: shape.width / 2,
                        outputRows: shape.batch * (shape.height / 2), shape: shape, name: name, op: op)

        case let .avgPool2x2Backward(dy, dx, shape):
            try need(dy, shape.count / 4, "dy", name)
            try need(dx, shape.count, "dx", name)
            try pool2x2("avgpool2x2_backward", input: dy, output: dx, outputWidth: shape.width,
                        outputRows: shape.batch * shape.height, shape: shape, name: name, op: op)

        case let .upsample2x(x, y, shape):
            try need(x, shape.count, "x", name)
            try need(y, shape.count * 4, "y", name)
            try pool2x2("upsample2x", input: x, output: y, outputWidth: shape.width * 2,
                        outputRows: shape.batch * shape.height * 2, shape: shape, name: name, op: op)

        case let .upsample2xBackward(dy, dx, shape):
            try need(dy, shape.count * 4, "dy", name)
            try need(dx, shape.count, "dx", name)
            try pool2x2("upsample2x_backward", input: dy, output: dx, outputWidth: shape.width,
                        outputRows: shape.batch * shape.height, shape: shape, name: name, op: op)

        case let .copyAxisRange(src, dst, outer, srcAxis, dstAxis, inner, srcStart, dstStart, length):
            guard srcStart >= 0, dstStart >= 0, length >= 0, srcStart + length <= srcAxis,
                  dstStart + length <= dstAxis else {
                throw DeviceError.invalidArgument(
                    "\(name): range \(srcStart)..<\(srcStart + length) of \(srcAxis) to "
                        + "\(dstStart)..<\(dstStart + length) of \(dstAxis) is out of bounds")
            }
            try need(src, outer * srcAxis * inner, "src", name)
            try need(dst, outer * dstAxis * inner, "dst", name)
            try launch("copy.cl", "copy_axis_range", global: [length * inner, outer],
                       args: [.buffer(src), .buffer(dst), .int(outer), .int(srcAxis), .int(dstAxis), .int(inner),
                              .int(srcStart), .int(dstStart), .int(length * inner)],
                       name: name, op: op)

        case let .reverseAxis(x, out, outer, axis, inner):
            try need(x, outer * axis * inner, "x", name)
            try need(out, outer * axis * inner, "out", name)
            try launch("copy.cl", "reverse_axis", global: [axis * inner, outer],
                       args: [.buffer(x), .buffer(out), .int(outer), .int(axis), .int(inner)], name: name, op: op)

        case let .gatherRows(table, index, out, rows, tableRows, columns):
            try need(table, tableRows * columns, "table", name)
            try need(index, rows, "index", name)
            try need(out, rows * columns, "out", name)
            if tableRows == 0 { return }
            try launch("copy.cl", "gather_rows", global: [columns, rows],
                       args: [.buffer(table), .buffer(index), .buffer(out), .int(rows), .int(tableRows),
                              .int(columns)],
                       name: name, op: op)

        case let .oneHot(index, out, rows, depth):
            try need(index, rows, "index", name)
            try need(out, rows * depth, "out", name)
            try launch("copy.cl", "one_hot", global: [depth, rows],
                       args: [.buffer(index), .buffer(out), .int(rows), .int(depth)], name: name, op: op)

        case let .softmaxCrossEntropy(logits, labels, loss, rows, classes):
            try need(logits, rows * classes, "logits", name)
            try need(labels, rows * classes, "labels", name)
            try need(loss, rows, "loss", name)
            if classes == 0 {
                try launchVector("elementwise.cl", "fill", count: rows,
                                 args: [.buffer(loss), .int(rows), .float(0)], name: name, op: op)
                return
            }
            try launch1D("loss.cl", "softmax_xent", count: rows,
                         args: [.buffer(logits), .buffer(labels), .buffer(loss), .int(rows), .int(classes)],
                         name: name, op: op)

        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, rows, classes):
            try need(logits, rows * classes, "logits", name)
            try need(labels, rows * classes, "labels", name)
            try need(dloss, rows, "dloss", name)
            try need(dlogits, rows * classes, "dlogits", name)
            if classes == 0 { return }
            try launch1D("loss.cl", "softmax_xent_backward", count: rows,
                         args: [.buffer(logits), .buffer(labels), .buffer(dloss), .buffer(dlogits), .int(rows),
                                .int(classes)],
                         name: name, op: op)

        case let .squaredErrorMean(a, target, loss, range):
            // One work-group sums the rows: a loss is one value, and its inputs are at most a few batches.
            let group = largestPowerOfTwoDivisor(of: 256, atMost: min(info.maxWorkGroupSize, 256))
            try launch("loss.cl", "squared_error_mean", options: "-DSEM_GROUP=\(group)", global: [group], local: [group],
                       args: [.buffer(a), .buffer(target ?? a), .buffer(loss), .int(range.columns), .int(range.start),
                              .int(range.count), .int(target == nil ? 0 : 1)], name: name, op: op)

        case let .squaredErrorMeanBackward(a, target, dloss, da, range, accumulate):
            if range.rows == 0 { return }
            try launch1D("loss.cl", "squared_error_mean_backward", count: range.rows,
                         args: [.buffer(a), .buffer(target ?? a), .buffer(dloss), .buffer(da), .int(range.rows),
                                .int(range.columns), .int(range.start), .int(range.count), .int(target == nil ? 0 : 1),
                                .int(accumulate ? 1 : 0)], name: name, op: op)

        case let .accumulateScalars(sources, out):
            for first in stride(from: 0, to: sources.count, by: 8) {
                let part = Array(sources[first..<min(first + 8, sources.count)])
                let padded = part + Array(repeating: part[0], count: 8 - part.count)
                try launch1D("loss.cl", "accumulate_scalars", count: 1,
                             args: [.buffer(out), .int(first), .int(part.count)] + padded.map { .buffer($0) },
                             name: name, op: op)
            }

        case let .random(distribution, out, seed, offset):
            let n = out.count
            let options = "-cl-fp32-correctly-rounded-divide-sqrt"
            switch distribution {
            case .uniform:
                try launch("random.cl", "random_uniform", options: options, global: [(n + 7) / 8],
                           args: [.buffer(out), .int(n), .ulong(seed), .ulong(offset)], name: name, op: op)
            case .normal:
                try launch("random.cl", "random_normal", options: options, global: [(n + 7) / 8],
                           args: [.buffer(out), .int(n), .ulong(seed), .ulong(offset)], name: name, op: op)
            case let .dropout(keep):
                try launch("random.cl", "random_dropout", options: options, global: [(n + 7) / 8],
                           args: [.buffer(out), .int(n), .ulong(seed), .ulong(offset), .float(keep),
                                  .float(1 / keep)],
                           name: name, op: op)
            }

        case let .adam(param, grad, m, v, hyper):
            let n = param.count
            try need(grad, n, "grad", name)
            try need(m, n, "m", name)
            try need(v, n, "v", name)
            try launchVector("optimizer.cl", "adam", count: n,
                             args: [.buffer(param), .buffer(grad), .buffer(m), .buffer(v), .int(n),
                                    .float(hyper.learningRateT), .float(hyper.beta1), .float(hyper.beta2),
                                    .float(hyper.epsilon)],
                             name: name, op: op)
        }
    }

    // MARK: - Elementwise and reductions

    private func binary(_ function: BinaryFunction, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer,
                        layout: BroadcastLayout, alpha: Float, name: String, op: Op) throws {
        let n = layout.count
        try need(out, n, "out", name)
        if layout.isElementwise {
            try need(a, n, "a", name)
            try need(b, n, "b", name)
            try launchVector("elementwise.cl", "binary_\(function.rawValue)", count: n,
                             args: [.buffer(a), .buffer(b), .buffer(out), .int(n), .float(alpha)], name: name, op: op)
            return
        }
        let rank = BroadcastLayout.maxRank
        let pad = rank - layout.shape.count
        let shape = Array(repeating: 1, count: pad) + layout.shape
        let aStrides = Array(repeating: 0, count: pad) + layout.aStrides
        let bStrides = Array(repeating: 0, count: pad) + layout.bStrides
        // The largest element each input is read at.
        let aLast = zip(shape, aStrides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        let bLast = zip(shape, bStrides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        if n == 0 { return }
        try need(a, aLast + 1, "a", name)
        try need(b, bLast + 1, "b", name)
        var args: [KernelArg] = [.buffer(a), .buffer(b), .buffer(out), .float(alpha)]
        args += shape.map { .int($0) } + aStrides.map { .int($0) } + bStrides.map { .int($0) }
        try launch("elementwise.cl", "binary_\(function.rawValue)_bcast", options: elementwiseOptions,
                   global: [shape[rank - 1], shape[rank - 2], n / (shape[rank - 1] * shape[rank - 2])], args: args,
                   name: name, op: op)
    }

    private func reduceSum(x: DeviceBuffer, out: DeviceBuffer, layout: ReduceLayout, name: String,
                           bytes: Double) throws {
        let strides = denseStrides(layout.shape)
        var kept: [(size: Int, stride: Int)] = []
        var reduced: [(size: Int, stride: Int)] = []
        for i in layout.shape.indices {
            if layout.reduced[i] {
                reduced.append((layout.shape[i], strides[i]))
            } else {
                kept.append((layout.shape[i], strides[i]))
            }
        }
        if reduced.isEmpty { reduced = [(1, 0)] }
        let inner = reduced.removeLast()
        try reducePass(x: x, out: out, outputs: layout.outputCount, kept: kept, outerReduced: reduced,
                       inner: inner, name: name, bytes: bytes)
    }

    /// One pass of `reduce_sum`; splits the inner reduced axis into chunks (and sums the chunks in a
    /// second pass) when the outputs alone would leave the device idle, or the sums would be long.
    private func reducePass(x: DeviceBuffer, out: DeviceBuffer, outputs: Int, kept: [(size: Int, stride: Int)],
                            outerReduced: [(size: Int, stride: Int)], inner: (size: Int, stride: Int),
                            name: String, bytes: Double) throws {
        if outputs == 0 { return }
        precondition(kept.count <= 3 && outerReduced.count <= 2, "reduction layout has too many axes")
        let keptPadded = Array(repeating: (size: 1, stride: 0), count: 3 - kept.count) + kept
        let outerPadded = outerReduced + Array(repeating: (size: 1, stride: 0), count: 2 - outerReduced.count)
        let outerWork = outerPadded.reduce(1) { $0 * $1.size }

        var chunks = 1
        let perItem = inner.size * outerWork
        if perItem >= 2048 {
            let forParallelism = (currentTuning.parallelItems + outputs - 1) / outputs
            let forAccuracy = (perItem + 4095) / 4096
            chunks = min(max(forParallelism, forAccuracy), (inner.size + 255) / 256)
            chunks = max(chunks, 1)
        }
        let chunk = (inner.size + chunks - 1) / chunks
        chunks = chunk == 0 ? 1 : (inner.size + chunk - 1) / chunk

        let target: DeviceBuffer = try chunks == 1 ? out : scratch(chunks * outputs)
        let args: [KernelArg] = [
            .buffer(x), .buffer(target), .int(outputs), .int(keptPadded[1].size), .int(keptPadded[2].size),
            .int(keptPadded[0].stride), .int(keptPadded[1].stride), .int(keptPadded[2].stride),
            .int(outerPadded[0].size), .int(outerPadded[0].stride), .int(outerPadded[1].size),
            .int(outerPadded[1].stride), .int(inner.size), .int(inner.stride), .int(max(chunk, 1)), .int(chunks),
        ]
        try launch("reduce.cl", "reduce_sum", global: [outputs, chunks], args: args,
                   name: chunks == 1 ? name : name + "_partial", bytes: bytes)
        if chunks > 1 {
            try reducePass(x: target, out: out, outputs: outputs, kept: [(outputs, 1)], outerReduced: [],
                           inner: (chunks, outputs), name: name + "_chunks", bytes: 0)
        }
    }

    private func pool2x2(_ kernel: String, input: DeviceBuffer, output: DeviceBuffer, outputWidth: Int,
                         outputRows: Int, shape: ImageShape, name: String, op: Op) throws {
        if kernel.hasPrefix("avgpool"), shape.height % 2 != 0 || shape.width % 2 != 0 {
            throw DeviceError.invalidArgument("\(name): height \(shape.height) and width \(shape.width) must be even")
        }
        try launch("pool.cl", kernel, global: [shape.channels, outputWidth, outputRows],
                   args: [.buffer(input), .buffer(output), .int(shape.batch), .int(shape.height), .int(shape.width),
                          .int(shape.channels)],
                   name: name, op: op)
    }

    // MARK: - Products

    /// The blocked kernels' geometry for `columns` output columns: rows per work-item, vector width,
    /// vectors per row and the columns they cover (a multiple of width × vectors); the rest go to a
    /// general kernel.
    private func blockShape(_ columns: Int) -> (rows: Int, width: Int, vectors: Int, covered: Int) {
        let t = currentTuning
        var width = t.vectorWidth
        while width > 4 && columns < width { width /= 2 }
        if columns < width { return (t.blockRows, width, 1, 0) }
        let wide = max(t.vectorsPerRow, 1)
        let vectors = columns >= width * wide ? wide : 1
        let rows = vectors > 1 ? t.wideBlockRows : t.blockRows
        return (rows, width, vectors, columns / (width * vectors) * (width * vectors))
    }

    /// Rows per work-item for `total` rows: the tuned block, or a smaller power of two when there are
    /// fewer rows (the kernels clamp and recompute rows past the end, which is waste).
    private static func blockRows(_ preferred: Int, total: Int) -> Int {
        if total >= preferred { return preferred }
        var rows = 1
        while rows < total { rows *= 2 }
        return min(rows, preferred)
    }

    /// Local size of the blocked kernels over (column blocks, row blocks).
    private func blockedLocal(columnBlocks: Int) -> [Int] {
        let t = currentTuning
        if t.serialWorkItems { return [1, t.blockGroupRows] }
        let across = min(nextPowerOfTwo(columnBlocks), 16)
        return [across, max(t.blockGroupRows * 4 / across, 1)]
    }

    /// C = alpha·op(A)·op(B) + beta·C. The kernels (gemm.cl):
    /// - NN and TN: `gemm_blocked` (vectors along the columns of B) for the columns that fill whole
    ///   vector blocks; NN's leftover columns go to `gemm_nt` with B transposed, TN's to `gemm_general`.
    /// - NT: `gemm_nt` (dot products along k; both operands read along their rows).
    /// - TT: B is transposed into scratch and the product runs as TN.
    private func gemm(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, shape s: GemmShape, name: String,
                      op: Op) throws {
        let (m, n, k) = (s.m, s.n, s.k)
        guard m >= 0, n >= 0, k >= 0 else { throw DeviceError.invalidArgument("\(name): negative size") }
        try need(a, m * k, "a", name)
        try need(b, k * n, "b", name)
        try need(c, m * n, "c", name)
        if m == 0 || n == 0 { return }
        if k == 0 {
            try launch1D("gemm.cl", "gemm_scale", count: m * n, args: [.buffer(c), .int(m * n), .float(s.beta)],
                         name: name + "_scale", op: op)
            return
        }
        if m * n * k <= 1 << 17 {
            // Small products (a latent probe, a discriminator's last layer) in one launch: the blocked paths
            // would spend more launches on transposes and leftover columns than on the product.
            try launch("gemm.cl", "gemm_general", global: [n, m],
                       args: [.buffer(a), .buffer(b), .buffer(c), .int(m), .int(n), .int(k), .float(s.alpha),
                              .float(s.beta), .int(s.transA ? 1 : 0), .int(s.transB ? 1 : 0), .int(0)],
                       name: name + "_small", op: op)
            return
        }
        if !s.transA && s.transB {
            try gemmNT(a: a, bt: b, c: c, shape: s, fromColumn: 0, name: name, op: op)
            return
        }
        // B as stored k × n.
        var bkn = b
        if s.transB {
            let t = try scratch(k * n)
            try transpose(b, rows: n, columns: k, into: t, name: name + "_transpose_b")
            bkn = t
        }
        let (preferredRows, width, vectors, covered) = blockShape(n)
        let rows = Self.blockRows(preferredRows, total: m)
        if covered > 0 {
            let options = "-DRM=\(rows) -DVW=\(width) -DNV=\(vectors) -DTRANS_A=\(s.transA ? 1 : 0)"
            let blocks = covered / (width * vectors)
            let share = Double(covered) / Double(n)
            try launch("gemm.cl", "gemm_blocked", options: options,
                       global: [blocks, (m + rows - 1) / rows], local: blockedLocal(columnBlocks: blocks),
                       args: [.buffer(a), .buffer(bkn), .buffer(c), .int(m), .int(n), .int(k), .float(s.alpha),
                              .float(s.beta)],
                       name: "\(name)_blocked\(s.transA ? "_tn" : "")_\(rows)x\(vectors * width)",
                       flops: op.flops * share, bytes: op.bytes * share)
        }
        if covered == n { return }
        if !s.transA {
            // The leftover columns as dot products against B transposed (n × k; small when n is).
            let bt = try scratch(k * n)
            try transpose(bkn, rows: k, columns: n, into: bt, name: name + "_transpose_b")
            try gemmNT(a: a, bt: bt, c: c, shape: s, fromColumn: covered, name: name, op: op)
            return
        }
        let share = Double(n - covered) / Double(n)
        try launch("gemm.cl", "gemm_general", global: [n - covered, m],
                   args: [.buffer(a), .buffer(bkn), .buffer(c), .int(m), .int(n), .int(k), .float(s.alpha),
                          .float(s.beta), .int(1), .int(0), .int(covered)],
                   name: name + "_general", flops: op.flops * share, bytes: op.bytes * share)
    }

    /// Columns [fromColumn, n) of C = alpha·A·Btᵀ + beta·C with A m × k and Bt n × k.
    private func gemmNT(a: DeviceBuffer, bt: DeviceBuffer, c: DeviceBuffer, shape s: GemmShape, fromColumn: Int,
                        name: String, op: Op) throws {
        let rows = Self.blockRows(4, total: s.m)
        let columns = 4
        let width = currentTuning.vectorWidth
        let share = Double(s.n - fromColumn) / Double(s.n)
        try launch("gemm.cl", "gemm_nt", options: "-DRM=\(rows) -DRN=\(columns) -DVK=\(width)",
                   global: [(s.n - fromColumn + columns - 1) / columns, (s.m + rows - 1) / rows],
                   local: currentTuning.serialWorkItems ? [1, currentTuning.blockGroupRows] : nil,
                   args: [.buffer(a), .buffer(bt), .buffer(c), .int(s.m), .int(s.n), .int(s.k), .float(s.alpha),
                          .float(s.beta), .int(fromColumn)],
                   name: "\(name)_nt_\(rows)x\(columns)", flops: op.flops * share, bytes: op.bytes * share)
    }

    /// out[b, c, r] = input[b', r, c] for input [batches, rows, columns], b' = b or (reversed) batches-1-b.
    private func transpose(_ input: DeviceBuffer, rows: Int, columns: Int, batches: Int = 1,
                           reverse: Bool = false, into out: DeviceBuffer, name: String) throws {
        try launch("copy.cl", "transpose", global: [(columns + 15) / 16, (rows + 15) / 16, batches],
                   args: [.buffer(input), .buffer(out), .int(rows), .int(columns), .int(batches),
                          .int(reverse ? 1 : 0)],
                   name: name, bytes: Double(2 * batches * rows * columns * MemoryLayout<Float>.stride))
    }

    // MARK: - Convolutions

    /// A buffer of at least `count` zeros, kept for the device's lifetime. The convolution kernels point a
    /// row's out-of-image taps at it instead of reading a zero-padded copy of the input or testing each
    /// element: their inner loops stay as simple as over a padded image. Grown by a host write (no launch).
    private func zeros(_ count: Int) throws -> DeviceBuffer {
        if let zeroBuffer, zeroBuffer.count >= count { return zeroBuffer }
        let size = nextPowerOfTwo(max(count, 256))
        let buffer = try allocate(size)
        let values = [Float](repeating: 0, count: size)
        try values.withUnsafeBytes { bytes in
            try clCheck(clEnqueueWriteBuffer(queue.handle, mem(buffer), cl_bool(CL_TRUE), 0, buffer.byteCount,
                                             bytes.baseAddress, 0, nil, nil), "clEnqueueWriteBuffer")
        }
        zeroBuffer = buffer
        return buffer
    }

    private func checkConv(_ s: ConvShape, _ name: String) throws {
        guard s.kernel == 1 || s.kernel == 3 else {
            throw DeviceError.invalidArgument("\(name): kernel size \(s.kernel) (1 or 3 expected)")
        }
        guard s.batch >= 0, s.height >= 0, s.width >= 0, s.inChannels >= 0, s.outChannels >= 0 else {
            throw DeviceError.invalidArgument("\(name): negative size in \(s)")
        }
    }

    private static func vectorWidth(dividing n: Int) -> Int {
        for width in [16, 8, 4, 2] where n % width == 0 { return width }
        return 1
    }

    /// y = act(conv(x, w) + bias) in one launch where the channels fill whole vector blocks (conv.cl reads the
    /// unpadded input and the HWIO filter in place; bias and activation are the kernels' epilogue). Leftover
    /// output channels take a second, direct kernel.
    private func convForward(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer?, y: DeviceBuffer,
                             shape s: ConvShape, activation: Activation, name: String, op: Op) throws {
        let pixels = s.batch * s.height * s.width
        if pixels == 0 || s.outChannels == 0 { return }
        let k = s.kernel
        let act = activation.isIdentity ? 0 : 1
        if try convTiled(input: x, w: w, bias: bias, output: nil, y: y, shape: s, flipped: false,
                         activation: activation, name: name, op: op) { return }
        let (preferredRows, width, vectors, covered) = blockShape(s.outChannels)
        let rows = Self.blockRows(preferredRows, total: pixels)
        let hasBias: Int = bias == nil ? 0 : 1
        let biasArg: KernelArg = .buffer(bias ?? y)
        let dims: [KernelArg] = [.int(s.batch), .int(s.height), .int(s.width), .int(s.inChannels),
                                 .int(s.outChannels)]
        if covered > 0 {
            let blocks = covered / (width * vectors)
            let share = Double(covered) / Double(s.outChannels)
            try launch("conv.cl", "conv_fwd_blocked",
                       options: "-DKS=\(k) -DRM=\(rows) -DVW=\(width) -DNV=\(vectors) -DACT=\(act)",
                       global: [blocks, (pixels + rows - 1) / rows], local: blockedLocal(columnBlocks: blocks),
                       args: [.buffer(x), .buffer(try zeros(s.inChannels)), .buffer(w), biasArg, .buffer(y)] + dims
                           + [.int(hasBias), .float(activation.alpha)],
                       name: "\(name)_blocked_\(rows)x\(vectors * width)", flops: op.flops * share,
                       bytes: op.bytes * share)
        }
        if covered < s.outChannels {
            let share = Double(s.outChannels - covered) / Double(s.outChannels)
            // The filter's stride along ci (cout) is a build option, so one output channel reads vectors.
            let vc = Self.vectorWidth(dividing: s.inChannels)
            try launch("conv.cl", "conv_fwd_direct", options: "-DKS=\(k) -DACT=\(act) -DVC=\(vc) -DWS=\(s.outChannels)",
                       global: [s.outChannels - covered, s.batch * s.height],
                       args: [.buffer(x), .buffer(w), biasArg, .buffer(y), .int(s.batch), .int(s.height),
                              .int(s.width), .int(s.inChannels), .int(covered), .int(hasBias),
                              .float(activation.alpha)],
                       name: "\(name)_direct_v\(vc)", flops: op.flops * share, bytes: op.bytes * share)
        }
    }

    /// The convolution of `input` as a local-memory tiled product (`conv_fwd_tiled`), when the tuning asks for
    /// it and the device runs work-groups of the tile's size; false when it did not run.
    /// `flipped`: this is the input gradient (`input` is dy, masked by act'(`output`) unless the activation is
    /// the identity; `w` the forward filter; `s` the swapped shape); otherwise the forward pass with its
    /// bias and activation.
    private func convTiled(input: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer?, output: DeviceBuffer?,
                           y: DeviceBuffer, shape s: ConvShape, flipped: Bool, activation: Activation,
                           name: String, op: Op) throws -> Bool {
        guard currentTuning.localTiles else { return false }
        let pixels = s.batch * s.height * s.width
        if pixels == 0 || s.outChannels == 0 { return true }  // nothing to write
        let tileRows = 64
        let tileColumns = s.outChannels <= 16 ? 16 : s.outChannels <= 32 ? 32 : 64
        let group = [tileColumns / 4, tileRows / 4]
        let columnTiles = (s.outChannels + tileColumns - 1) / tileColumns
        let rowTiles = (pixels + tileRows - 1) / tileRows
        // Few tiles with long sums (deep layers on small images): split K so that every compute unit gets
        // about two work-groups, keeping at least 64 terms per slice.
        let depth = s.kernel * s.kernel * s.inChannels
        let tiles = columnTiles * rowTiles
        var splits = min((2 * info.computeUnits + tiles - 1) / tiles, max(depth / 64, 1))
        let slice = ((depth + splits - 1) / max(splits, 1) + 15) / 16 * 16
        splits = depth == 0 ? 1 : (depth + slice - 1) / slice
        // The forward epilogue (bias, activation) runs in the tile kernel for one slice, else in the pass
        // that adds the slices up; the input gradient's mask is applied as dy is loaded.
        let epilogue = !flipped && !activation.isIdentity
        let mask = flipped && !activation.isIdentity
        let options = "-DKS=\(s.kernel) -DTM=\(tileRows) -DTN=\(tileColumns) -DFLIP=\(flipped ? 1 : 0)"
            + " -DACT=\(epilogue && splits == 1 ? 1 : 0) -DMASK=\(mask ? 1 : 0)"
        let kernel = try programs.kernel(file: "conv.cl", name: "conv_fwd_tiled", options: options)
        guard min(kernel.maxWorkGroupSize, info.maxWorkGroupSize) >= group[0] * group[1],
              info.maxWorkItemSizes.count >= 2, info.maxWorkItemSizes[0] >= group[0],
              info.maxWorkItemSizes[1] >= group[1] else { return false }
        let target = try splits == 1 ? y : scratch(splits * pixels * s.outChannels)
        let hasBias = bias != nil && splits == 1
        try launch("conv.cl", "conv_fwd_tiled", options: options,
                   global: [columnTiles * group[0], rowTiles * group[1], splits], local: group + [1],
                   args: [.buffer(input), .buffer(w), .buffer(bias ?? y), .buffer(output ?? input), .buffer(target),
                          .int(s.batch), .int(s.height), .int(s.width), .int(s.inChannels), .int(s.outChannels),
                          .int(hasBias ? 1 : 0), .int(splits == 1 ? max(depth, 1) : slice),
                          .float(activation.alpha)],
                   name: "\(name)_tiled_\(tileRows)x\(tileColumns)\(splits > 1 ? "_split" : "")", op: op)
        if splits > 1 {
            let total = pixels * s.outChannels
            try launch("conv.cl", "conv_sum_slices", options: "-DACT=\(epilogue ? 1 : 0)", global: [total],
                       args: [.buffer(target), .buffer(bias ?? y), .buffer(y), .int(total), .int(s.outChannels),
                              .int(splits), .int(bias == nil ? 0 : 1), .float(activation.alpha)],
                       name: name + "_splits", bytes: Double((splits + 1) * total * MemoryLayout<Float>.stride))
        }
        return true
    }

    /// dx = input gradient of dy ⊙ act'(output): on GPUs the tiled kernel with the filter read flipped in
    /// place; otherwise `conv_dx_blocked` (the forward kernel's product with a private copy of the flipped
    /// filter block) for the input channels that fill whole vector blocks, when the layer has fewer than 128
    /// output channels or each work-item has at least 4 row blocks to amortise the copy over, and `conv_dx_nt`
    /// (dot products along co) for the rest; `conv_dx_narrow` for fewer
    /// than 4 output channels. One launch whenever cin is a multiple of the vector width (all lines32 layers).
    private func convBackwardInput(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, shape s: ConvShape,
                                   activation: Activation, output: DeviceBuffer?, name: String, op: Op) throws {
        let pixels = s.batch * s.height * s.width
        if pixels == 0 || s.inChannels == 0 { return }
        if s.outChannels == 0 {
            try launchVector("elementwise.cl", "fill", count: pixels * s.inChannels,
                             args: [.buffer(dx), .int(pixels * s.inChannels), .float(0)], name: name, op: op)
            return
        }
        // dx = conv(dy, flipped filter) with the channel counts swapped.
        let swapped = ConvShape(batch: s.batch, height: s.height, width: s.width, inChannels: s.outChannels,
                                outChannels: s.inChannels, kernel: s.kernel)
        if try convTiled(input: dy, w: w, bias: nil, output: output, y: dx, shape: swapped, flipped: true,
                         activation: activation, name: name, op: op) {
            return
        }
        let t = currentTuning
        let mask = activation.isIdentity ? 0 : 1
        if s.outChannels < 4 {
            // A single-term dot product per tap: vectors over ci instead (cout a build option, see conv.cl).
            let vc = Self.vectorWidth(dividing: s.inChannels)
            try launch("conv.cl", "conv_dx_narrow",
                       options: "-DKS=\(s.kernel) -DVC=\(vc) -DWS=\(s.outChannels) -DMASK=\(mask)",
                       global: [s.inChannels / vc, s.batch * s.height],
                       args: [.buffer(dy), .buffer(w), .buffer(output ?? dy), .buffer(dx), .int(s.batch),
                              .int(s.height), .int(s.width), .int(s.inChannels), .float(activation.alpha)],
                       name: "\(name)_narrow_v\(vc)", op: op)
            return
        }
        var ciBegin = 0
        let (preferredRows, width, vectors, covered) = blockShape(s.inChannels)
        let staged = s.kernel * s.kernel * s.outChannels * width * vectors
        let rows = Self.blockRows(preferredRows, total: pixels)
        let rowBlocks = (pixels + rows - 1) / rows
        let blocks = covered / (width * vectors)
        // Row blocks per work-item: enough to amortise the copy, while leaving the device enough items (up to
        // 64: on PoCL 4-9% faster than 16 for the 32², 16² and 8² layers; no cap at all gained nothing more).
        let perItem = max(1, min(64, rowBlocks * blocks / max(t.parallelItems, 1)))
        // From 128 output channels on, the copy (a gather of the whole filter block) pays only when each
        // work-item computes at least 4 row blocks with it; measured on PoCL, the 4²·64→128 and 4²·128→128
        // layers run about 1.3x as fast blocked, the 2²·16→128 one (one row block per item) faster as dot products.
        if covered > 0 && staged <= 1 << 16 && (s.outChannels < 128 || perItem >= 4) {
            // The flipped product with a private copy of each work-item's filter block (at most 256 KiB).
            let share = Double(covered) / Double(s.inChannels)
            try launch("conv.cl", "conv_dx_blocked",
                       options: "-DKS=\(s.kernel) -DRM=\(rows) -DVW=\(width) -DNV=\(vectors) -DWS=\(s.outChannels)"
                           + " -DRB=\(perItem) -DMASK=\(mask)",
                       global: [blocks, (rowBlocks + perItem - 1) / perItem],
                       local: t.serialWorkItems ? [1, 1] : nil,
                       args: [.buffer(dy), .buffer(try zeros(s.outChannels)), .buffer(w), .buffer(output ?? dy),
                              .buffer(dx), .int(s.batch), .int(s.height), .int(s.width), .int(s.inChannels),
                              .float(activation.alpha)],
                       name: "\(name)_blocked_\(rows)x\(vectors * width)", flops: op.flops * share,
                       bytes: op.bytes * share)
            if covered == s.inChannels { return }
            ciBegin = covered
        }
        let remaining = s.inChannels - ciBegin
        let ntRows = Self.blockRows(4, total: pixels)
        let columns = min(4, remaining)
        let vk = largestPowerOfTwoDivisor(of: s.outChannels, atMost: t.vectorWidth)
        let options = "-DKS=\(s.kernel) -DRM=\(ntRows) -DRN=\(columns) -DVK=\(vk) -DMASK=\(mask)"
        let share = Double(remaining) / Double(s.inChannels)
        try launch("conv.cl", "conv_dx_nt", options: options,
                   global: [(remaining + columns - 1) / columns, (pixels + ntRows - 1) / ntRows],
                   local: t.serialWorkItems ? [1, t.blockGroupRows] : nil,
                   args: [.buffer(dy), .buffer(try zeros(s.outChannels)), .buffer(w), .buffer(output ?? dy), .buffer(dx),
                          .int(s.batch), .int(s.height), .int(s.width), .int(s.inChannels), .int(s.outChannels),
                          .int(ciBegin), .float(activation.alpha)],
                   name: "\(name)_nt_\(ntRows)x\(columns)_v\(vk)", flops: op.flops * share, bytes: op.bytes * share)
    }

    /// dw (+)= filter gradient of (x, dy ⊙ act'(output)) and db (+)= its pixel sum, in the same kernels (db by
    /// one extra row of work-items). With the CPU tuning one launch whenever the filter gradient alone has at
    /// least two work-items per compute unit, or is tiny: each work-item then sums all pixels, in blocks of rows
    /// (conv.cl), so a long sum costs no accuracy. Otherwise (GPUs, few work-items) the pixels are split into
    /// chunks of image rows whose partial sums `conv_sum_chunks` adds up (and into dw and db when accumulating).
    private func convBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer?,
                                    shape s: ConvShape, activation: Activation, output: DeviceBuffer?,
                                    accumulate: Bool, name: String, op: Op) throws {
        let k = s.kernel
        let taps = k * k
        let total = taps * s.inChannels * s.outChannels
        let dbCount = db == nil ? 0 : s.outChannels
        if total + dbCount == 0 { return }
        let imageRows = s.batch * s.height
        if imageRows == 0 || s.width == 0 {
            // Empty sums: zeros, or nothing to add.
            if accumulate { return }
            for (buffer, count) in [(dw, total), (db ?? dw, dbCount)] where count > 0 {
                try launchVector("elementwise.cl", "fill", count: count,
                                 args: [.buffer(buffer), .int(count), .float(0)], name: name, op: op)
            }
            return
        }
        let t = currentTuning
        let (tunedRows, width, vectors, covered) = blockShape(s.outChannels)
        // With one vector per row, CPUs take 16 input channels per work-item: the dy vector loaded (and masked)
        // for each pixel then feeds 16 FMAs instead of 12 (the running totals, added to once per block of rows,
        // may live in memory).
        let blockRows = t.serialWorkItems && vectors == 1 ? 16 : tunedRows
        // Rows are input channels here: prefer a block that divides them (no clamped, wasted rows).
        let divisor = largestDivisor(of: s.inChannels, atMost: blockRows)
        let rows = max(divisor * 2 > blockRows ? divisor : min(blockRows, s.inChannels), 1)
        let vc = Self.vectorWidth(dividing: s.inChannels)
        let ciBlocks = (s.inChannels + rows - 1) / rows
        let blockedItems = covered > 0 ? covered / (width * vectors) * taps * ciBlocks : 0
        let vecItems = (s.outChannels - covered) * taps * (s.inChannels / vc)
        let items = blockedItems + vecItems
        var chunks: Int
        // (The CPU tuning aims for 16 work-items per compute unit: `parallelItems / 8` is two per unit.) A tiny
        // gradient (a millisecond's work for one work-item) is one launch too: splitting it gains less.
        let products = Double(s.batch * s.height * s.width) * Double(total)
        if t.serialWorkItems && (8 * items >= t.parallelItems || products <= Double(1 << 22)) {
            chunks = 1
        } else {
            // Enough work-items for the device, but partial sums of at most 32 MiB (or 4 filters' worth).
            chunks = min(max((t.parallelItems + items - 1) / max(items, 1), 1), imageRows)
            chunks = max(min(chunks, max((1 << 23) / (total + dbCount), 4)), 1)
        }
        let chunk = (imageRows + chunks - 1) / chunks
        chunks = (imageRows + chunk - 1) / chunk
        let stride = total + dbCount
        let target = try chunks == 1 ? dw : scratch(chunks * stride)
        // Sums of about 512 pixels are added into each work-item's running totals.
        let rowsPerSum = max(1, 512 / s.width)
        let mask = activation.isIdentity ? 0 : 1
        let dims: [KernelArg] = [.int(s.batch), .int(s.height), .int(s.width), .int(s.inChannels),
                                 .int(s.outChannels)]
        let tail: [KernelArg] = [.int(rowsPerSum), .int(stride), .int(chunks == 1 && accumulate ? 1 : 0),
                                 .float(activation.alpha)]
        let buffers: [KernelArg] = [.buffer(x), .buffer(dy), .buffer(output ?? dy), .buffer(target), .buffer(db ?? dw)]
        let dbRow = db == nil ? 0 : 1
        if covered > 0 {
            let blocks = covered / (width * vectors)
            let share = Double(covered) / Double(s.outChannels)
            try launch("conv.cl", "conv_dw_blocked",
                       options: "-DKS=\(k) -DRM=\(rows) -DVW=\(width) -DNV=\(vectors) -DMASK=\(mask)"
                           + " -DCLAMP=\(s.inChannels % rows == 0 ? 0 : 1)",
                       global: [blocks, taps * ciBlocks + dbRow, chunks],
                       local: t.serialWorkItems ? [1, 1, 1] : nil,
                       args: buffers + dims + [.int(chunk), .int(chunks)] + tail,
                       name: "\(name)_blocked_\(rows)x\(vectors * width)\(chunks > 1 ? "_chunks" : "")",
                       flops: op.flops * share, bytes: op.bytes * share)
        }
        if covered < s.outChannels {
            let share = Double(s.outChannels - covered) / Double(s.outChannels)
            try launch("conv.cl", "conv_dw_vec", options: "-DKS=\(k) -DVC=\(vc) -DMASK=\(mask)",
                       global: [s.outChannels - covered, taps * (s.inChannels / vc) + dbRow, chunks],
                       local: t.serialWorkItems ? [1, 1, 1] : nil,
                       args: buffers + dims + [.int(covered), .int(chunk), .int(chunks)] + tail,
                       name: "\(name)_vec\(vc)\(chunks > 1 ? "_chunks" : "")", flops: op.flops * share,
                       bytes: op.bytes * share)
        }
        if chunks > 1 {
            try launch("conv.cl", "conv_sum_chunks", global: [stride],
                       args: [.buffer(target), .buffer(dw), .buffer(db ?? dw), .int(total), .int(stride), .int(chunks),
                              .int(accumulate ? 1 : 0)],
                       name: name + "_chunks", bytes: Double((chunks + 1) * stride * MemoryLayout<Float>.stride))
        }
    }

    // MARK: - Launching (lock held)

    enum KernelArg {
        case buffer(DeviceBuffer)
        case int(Int)
        case float(Float)
        case ulong(UInt64)
    }

    private var elementwiseOptions: String { "-DEW=\(currentTuning.elementwiseVector)" }

    /// A kernel of elementwise.cl or optimizer.cl: each work-item covers `elementwiseVector` elements.
    private func launchVector(_ file: String, _ kernel: String, count: Int, args: [KernelArg], name: String,
                              op: Op) throws {
        let width = currentTuning.elementwiseVector
        try launch(file, kernel, options: elementwiseOptions, global: [(count + width - 1) / width], args: args,
                   name: name, op: op)
    }

    private func launch1D(_ file: String, _ kernel: String, options: String = "", count: Int, args: [KernelArg],
                          name: String, op: Op) throws {
        try launch(file, kernel, options: options, global: [count], args: args, name: name, op: op)
    }

    private func launch(_ file: String, _ kernel: String, options: String = "", global: [Int], local: [Int]? = nil,
                        args: [KernelArg], name: String, op: Op) throws {
        try launch(file, kernel, options: options, global: global, local: local, args: args, name: name,
                   flops: op.flops, bytes: op.bytes)
    }

    /// Sets the arguments and enqueues `kernel` over `global` work-items (rounded up to whole work-groups;
    /// kernels guard their indices). With `local` nil the work-group covers dimension 0 first.
    private func launch(_ file: String, _ kernel: String, options: String = "", global: [Int], local: [Int]? = nil,
                        args: [KernelArg], name: String, flops: Double = 0, bytes: Double = 0) throws {
        if global.contains(where: { $0 <= 0 }) { return }
        let shared = try programs.kernel(file: file, name: kernel, options: options)
        // While preparing ops for replay, each launch gets a kernel object of its own with its arguments set
        // once; otherwise the shared kernel object takes this launch's arguments.
        let k = capture == nil ? shared : try CLKernel(program: shared.program, name: kernel, device: clDevice)
        for (i, arg) in args.enumerated() { try setArgument(k, i, arg) }

        // Work-group size: dimension 0 first. Every dimension but the last is launched exactly (its
        // work-group size divides it) and only the last is rounded up, so kernels guard only the last
        // index (see Kernels/common.h). Sizes are powers of two and the last one does not shrink for
        // small launches: PoCL compiles a kernel once per work-group size, so fewer sizes mean fewer
        // compilations (about 0.1 s each).
        let cap = max(min(k.maxWorkGroupSize, info.maxWorkGroupSize), 1)
        var localSize = local ?? defaultLocal(global, cap: min(cap, currentTuning.groupSize))
        while localSize.reduce(1, *) > cap, let i = localSize.indices.max(by: { localSize[$0] < localSize[$1] }) {
            localSize[i] = max(localSize[i] / 2, 1)
        }
        var globalSize = global
        let last = globalSize.count - 1
        for i in globalSize.indices {
            let limit = i < info.maxWorkItemSizes.count ? info.maxWorkItemSizes[i] : 1
            while localSize[i] > limit { localSize[i] /= 2 }
            if i < last {
                localSize[i] = largestPowerOfTwoDivisor(of: globalSize[i], atMost: localSize[i])
            } else {
                localSize[i] = max(localSize[i], 1)
                globalSize[i] = (globalSize[i] + localSize[i] - 1) / localSize[i] * localSize[i]
            }
            if globalSize[i] > Int(Int32.max) {
                throw DeviceError.invalidArgument("\(name): \(globalSize[i]) work-items are too many")
            }
        }

        let prepared = PreparedLaunch(kernel: k, global: globalSize, local: localSize, name: name, flops: flops,
                                      bytes: bytes, buffers: args.compactMap { if case let .buffer(b) = $0 { b } else { nil } })
        if capture != nil {
            capture?.append(prepared)
        } else {
            try enqueue(prepared)
        }
    }

    /// One kernel launch with its arguments set: run at once, or kept by `prepare` to be enqueued again.
    /// It holds the buffers of its arguments (scratch memory included), so none returns to the pool while
    /// a prepared plan may still write it.
    struct PreparedLaunch {
        let kernel: CLKernel
        let global: [Int]
        let local: [Int]
        let name: String
        let flops: Double, bytes: Double
        let buffers: [DeviceBuffer]
    }

    private func enqueue(_ launch: PreparedLaunch) throws {
        if pending.count >= 8192 {
            // Profiling without reads: collect the timings so the event list stays bounded.
            try clCheck(clFinish(queue.handle), "clFinish")
            try collectEvents()
        }
        var event: cl_event?
        let code: cl_int = launch.global.withUnsafeBufferPointer { g in
            launch.local.withUnsafeBufferPointer { l in
                if profiler.enabled {
                    return clEnqueueNDRangeKernel(queue.handle, launch.kernel.handle, cl_uint(g.count), nil,
                                                  g.baseAddress, l.baseAddress, 0, nil, &event)
                }
                return clEnqueueNDRangeKernel(queue.handle, launch.kernel.handle, cl_uint(g.count), nil, g.baseAddress,
                                              l.baseAddress, 0, nil, nil)
            }
        }
        try clCheck(code, "clEnqueueNDRangeKernel(\(launch.kernel.name), global \(launch.global), local \(launch.local))")
        launches += 1
        try flushIfDue()
        if let event {
            pending.append(PendingEvent(event: event, name: launch.name, flops: launch.flops, bytes: launch.bytes))
        }
    }

    /// Ops prepared for replay: their launches, enqueued as they are every time.
    final class PreparedLaunches: PreparedOps, @unchecked Sendable {
        let device: OpenCLDevice
        let launches: [PreparedLaunch]
        init(device: OpenCLDevice, launches: [PreparedLaunch]) {
            self.device = device
            self.launches = launches
        }
        var launchCount: Int { launches.count }
        func run() throws { try device.enqueueAll(launches) }
    }

    private func enqueueAll(_ prepared: [PreparedLaunch]) throws {
        try lock.withLock { for launch in prepared { try enqueue(launch) } }
    }

    private func defaultLocal(_ global: [Int], cap: Int) -> [Int] {
        var remaining = max(cap, 1)
        var local: [Int] = []
        for (i, g) in global.enumerated() {
            let size = i < global.count - 1 ? largestPowerOfTwoDivisor(of: g, atMost: remaining) : remaining
            local.append(size)
            remaining = max(remaining / size, 1)
        }
        return local
    }

    private func setArgument(_ kernel: CLKernel, _ index: Int, _ arg: KernelArg) throws {
        let i = cl_uint(index)
        let code: cl_int
        switch arg {
        case let .buffer(buffer):
            var handle: cl_mem? = mem(buffer)
            code = clSetKernelArg(kernel.handle, i, MemoryLayout<cl_mem?>.size, &handle)
        case let .int(value):
            guard let narrow = Int32(exactly: value) else {
                throw DeviceError.invalidArgument("kernel \(kernel.name): argument \(index) = \(value) exceeds 32 bits")
            }
            var v = narrow
            code = clSetKernelArg(kernel.handle, i, MemoryLayout<Int32>.size, &v)
        case let .float(value):
            var v = value
            code = clSetKernelArg(kernel.handle, i, MemoryLayout<Float>.size, &v)
        case let .ulong(value):
            var v = value
            code = clSetKernelArg(kernel.handle, i, MemoryLayout<UInt64>.size, &v)
        }
        try clCheck(code, "clSetKernelArg(\(kernel.name), \(index))")
    }

    /// Reads the timings of finished kernels into the profiler (lock held, queue finished).
    private func collectEvents() throws {
        if pending.isEmpty { return }
        let events = pending
        pending.removeAll(keepingCapacity: true)
        defer { for e in events { clReleaseEvent(e.event) } }
        for e in events {
            var start: cl_ulong = 0
            var end: cl_ulong = 0
            try clCheck(clGetEventProfilingInfo(e.event, cl_profiling_info(CL_PROFILING_COMMAND_START),
                                                MemoryLayout<cl_ulong>.size, &start, nil), "clGetEventProfilingInfo")
            try clCheck(clGetEventProfilingInfo(e.event, cl_profiling_info(CL_PROFILING_COMMAND_END),
                                                MemoryLayout<cl_ulong>.size, &end, nil), "clGetEventProfilingInfo")
            profiler.record(Profiler.Record(name: e.name, startNs: start, durationNs: end >= start ? end - start : 0,
                                            flops: e.flops, bytes: e.bytes))
        }
    }

    // MARK: - Helpers

    private func mem(_ buffer: DeviceBuffer) -> cl_mem { OpaquePointer(buffer.handle) }

    /// A temporary device buffer for one op. It returns to the pool when the op's function returns; the
    /// in-order queue guarantees the kernels using it run before any later reuse.
    private func scratch(_ count: Int) throws -> DeviceBuffer { try allocate(count) }

    private func checkOwned(_ buffer: DeviceBuffer, _ what: String) throws {
        guard buffer.pool === pool else {
            throw DeviceError.invalidArgument("\(what): a buffer that belongs to another device was given to \(id)")
        }
    }

    private func need(_ buffer: DeviceBuffer, _ count: Int, _ label: String, _ name: String) throws {
        guard count >= 0, buffer.count >= count else {
            throw DeviceError.invalidArgument("\(name): buffer \(label) holds \(buffer.count) floats, \(count) needed")
        }
    }
}

/// The largest divisor of n that is at most limit (1 when n < 1).
func largestDivisor(of n: Int, atMost limit: Int) -> Int {
    if n <= limit { return max(n, 1) }
    var d = max(limit, 1)
    while d > 1 && n % d != 0 { d -= 1 }
    return d
}

/// The largest power of two that divides n and is at most limit (1 when n < 1). Work-group sizes are
/// kept to powers of two: PoCL compiles a kernel again for every work-group size it meets.
func largestPowerOfTwoDivisor(of n: Int, atMost limit: Int) -> Int {
    var d = 1
    while n > 0, d * 2 <= limit, n % (d * 2) == 0 { d *= 2 }
    return d
}

func nextPowerOfTwo(_ n: Int) -> Int {
    var p = 1
    while p < n { p <<= 1 }
    return p
}

/// "1073741824", "512M", "2G", "1.5GiB" → bytes (binary units); nil when unparseable.
func parseByteCount(_ text: String) -> Int? {
    var s = text.trimmingCharacters(in: .whitespaces).uppercased()
    if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
    let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024,
                                      "T": 1024 * 1024 * 1024 * 1024]
    var scale = 1.0
    if let last = s.last, let u = units[last] {
        scale = u
        s.removeLast()
    }
    guard let value = Double(s.trimmingCharacters(in: .whitespaces)), value >= 0 else { return nil }
    return Int(value * scale)
}
