import Foundation

/// A device that passes everything to `base` and, while a `StepPlan` is being recorded, also keeps the ops
/// it runs. Models are built on it, so the tensors of a training step are recorded without the model
/// knowing. While recording, host reads and writes are refused: a step whose host code depended on device
/// values, or that uploaded host values, could not be replayed.
///
/// Memory: what a step allocates while it is recorded comes from `RecordingMemory`, whose allocations are
/// the base device's buffers kept by the recordings. The recorded ops name those buffers, so a plan reuses
/// memory exactly as the eager step did (its pool handed freed buffers to later allocations): the plan's
/// memory plan is the eager step's, fixed.
public final class RecordingDevice: Device, @unchecked Sendable {
    public let base: any Device
    private let lock = NSLock()
    private var recorded: [Op]?
    private var recordedHostSteps: [(at: Int, step: HostStep)] = []
    let stepMemory: RecordingMemory

    public init(base: any Device) {
        self.base = base
        self.stepMemory = RecordingMemory(base: base)
    }

    public var id: String { base.id }
    public var description: String { base.description }
    public var kind: DeviceKind { base.kind }
    public var memory: MemoryStats { base.memory }
    public var profiler: Profiler { base.profiler }
    public var launchCount: Int { base.launchCount }
    public var synchronizationCount: Int { base.synchronizationCount }
    public var viewAlignment: Int { base.viewAlignment }
    public func clearCache() { base.clearCache() }
    public func allocate(_ count: Int) throws -> DeviceBuffer {
        isRecording ? try stepMemory.pool.allocate(count) : try base.allocate(count)
    }

    public func view(of buffer: DeviceBuffer, offset: Int, count: Int) throws -> DeviceBuffer {
        let view = try base.view(of: stepMemory.canonical(buffer), offset: offset, count: count)
        return buffer.pool === stepMemory.pool ? stepMemory.wrap(view, of: buffer) : view
    }

    public func write(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        try refuseWhileRecording("writes host values to the device")
        try base.write(values, to: stepMemory.canonical(buffer))
    }

    public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: DeviceBuffer) throws {
        try refuseWhileRecording("uploads host values to the device")
        try base.upload(values, to: stepMemory.canonical(buffer))
    }

    public func read(_ buffer: DeviceBuffer, into values: UnsafeMutableBufferPointer<Float>) throws {
        try refuseWhileRecording("reads device values on the host")
        try base.read(stepMemory.canonical(buffer), into: values)
    }

    public func synchronize() throws {
        try refuseWhileRecording("waits for the device")
        try base.synchronize()
    }

    public func run(_ op: Op) throws {
        let mapped = stepMemory.inUse && op.buffers.contains(where: { $0.pool === stepMemory.pool })
            ? op.mapBuffers(stepMemory.canonical) : op
        try base.run(mapped)
        lock.withLock { recorded?.append(mapped) }
    }

    public func prepare(_ ops: [Op]) throws -> any PreparedOps { try base.prepare(ops) }

    var isRecording: Bool { lock.withLock { recorded != nil } }

    /// Runs `body`, returning the ops it ran through this device and the host steps between them.
    func record(_ body: () throws -> Void) throws -> (ops: [Op], hostSteps: [(at: Int, step: HostStep)]) {
        try lock.withLock {
            guard recorded == nil else { throw DeviceError.invalidArgument("a step plan is already being recorded") }
            recorded = []
            recordedHostSteps = []
        }
        defer { lock.withLock { recorded = nil; recordedHostSteps = [] } }
        try body()
        return lock.withLock { (recorded ?? [], recordedHostSteps) }
    }

    /// Runs a host step now, on the base device's buffers; while recording, the plan keeps it at this point.
    func runHostStep(_ what: String, buffers: [DeviceBuffer],
                     _ body: @escaping (any Device, [DeviceBuffer]) throws -> Void) throws {
        let step = HostStep(what: what, buffers: buffers.map(stepMemory.canonical), body: body)
        try step.run(on: base)
        lock.withLock {
            if let count = recorded?.count { recordedHostSteps.append((count, step)) }
        }
    }

    private func refuseWhileRecording(_ what: String) throws {
        if isRecording {
            throw DeviceError.invalidArgument(
                "a recorded training step \(what); a step must run on the device alone (upload inputs before it, read results after it)")
        }
    }
}

/// The memory of recorded steps: a pool whose allocations are buffers of the base device ("canonical"
/// buffers, found by handle). Tensors of a step being recorded get this pool's buffers; the ops run and
/// recorded name the canonical ones, which the plans keep: none goes back to the base device while a plan
/// holds it, and plans of one device share the memory (each replay writes what it reads).
final class RecordingMemory: @unchecked Sendable {
    final class Table: @unchecked Sendable {
        let lock = NSLock()
        var buffers: [UnsafeMutableRawPointer: DeviceBuffer] = [:]
        /// The base device's views behind views of this pool's buffers, by handle.
        var views: [UnsafeMutableRawPointer: DeviceBuffer] = [:]
        var used = false
    }
    let table = Table()
    let pool: BufferPool

    init(base: any Device) {
        let table = self.table
        pool = BufferPool(
            deviceName: "\(base.id) (recorded steps)", limitBytes: Int.max, cacheLimitBytes: Int.max,
            allocate: { bytes in
                guard let buffer = try? base.allocate(bytes / MemoryLayout<Float>.stride) else { return nil }
                table.lock.withLock {
                    table.buffers[buffer.handle] = buffer
                    table.used = true
                }
                return buffer.handle
            },
            free: { handle, _ in table.lock.withLock { _ = table.buffers.removeValue(forKey: handle) } })
    }

    var inUse: Bool { table.lock.withLock { table.used } }

    /// The base device's buffer behind a buffer of this pool (or behind a view of one); any other as it is.
    func canonical(_ buffer: DeviceBuffer) -> DeviceBuffer {
        guard buffer.pool === pool else { return buffer }
        return table.lock.withLock { buffer.parent == nil ? table.buffers[buffer.handle] : table.views[buffer.handle] }
            ?? buffer
    }

    /// A view of a buffer of this pool: `view` (the base device's view of its canonical buffer) wrapped so that
    /// it keeps `buffer` in use, as a view must; otherwise the pool would hand its memory to the next
    /// allocation while the view still reads it.
    func wrap(_ view: DeviceBuffer, of buffer: DeviceBuffer) -> DeviceBuffer {
        let table = self.table
        table.lock.withLock { table.views[view.handle] = view }
        return DeviceBuffer(viewOf: buffer, offset: view.offset, count: view.count, handle: view.handle,
                            release: { handle in table.lock.withLock { _ = table.views.removeValue(forKey: handle) } })
    }
}

/// Work a training step does on the host between its ops, with device buffers it reads and writes through the
/// device it is given: the gradient all-reduce of a data-parallel run (read, MPI, write back). A recorded plan
/// runs it again at the same point of every replay, on the same buffers.
public final class HostStep {
    public let what: String
    let buffers: [DeviceBuffer]
    let body: (any Device, [DeviceBuffer]) throws -> Void

    init(what: String, buffers: [DeviceBuffer], body: @escaping (any Device, [DeviceBuffer]) throws -> Void) {
        self.what = what
        self.buffers = buffers
        self.body = body
    }

    func run(on device: any Device) throws { try body(device, buffers) }
}

/// Runs `body` on the host at this point of the work on `device`: `body` reads and writes `buffers` through the
/// device it is handed (the base device when `device` records steps, where host reads are otherwise refused),
/// and a recorded step plan runs it again at the same point of each replay. Everything else a step does stays
/// on the device.
public func runOnHost(_ what: String, on device: any Device, buffers: [DeviceBuffer],
                      _ body: @escaping (any Device, [DeviceBuffer]) throws -> Void) throws {
    if let recording = device as? RecordingDevice {
        try recording.runHostStep(what, buffers: buffers, body)
    } else {
        try body(device, buffers)
    }
}

/// One training step recorded as the ops it ran, replayed on the base device for every later step of the
/// same shape. The buffers of the recording stay with the plan (they are its memory plan: the eager step's
/// pool reuse, fixed), so replaying writes the same buffers the step wrote. What changes from step to step
/// is patched into the ops at replay, on the host, without waiting for the device:
/// - random draws: offsets move with the step's `RandomStream` (the step draws the same counts every time);
/// - Adam updates: each optimiser counts its step and gives the bias-corrected rate for it.
/// Everything else a step reads (the batch, labels) lives in buffers the caller fills before the step.
public final class StepPlan {
    public let ops: [Op]
    /// Host steps (all-reduces) and the op each runs before (`ops.count`: after the last).
    public let hostSteps: [(at: Int, step: HostStep)]
    /// What the plan is for: replaying it for another model or other shapes would be wrong.
    let model: AnyObject
    let shapes: [[Int]]
    let randomSeeds: Set<UInt64>
    let recordedOffset: UInt64
    /// Values each step draws from the stream.
    let randomCount: UInt64
    let randomIndices: [Int]
    let adamIndices: [(index: Int, adam: Adam)]

    /// Records `step` (run eagerly once) on `device`.
    init(recording step: (inout RandomStream) throws -> Void, on device: RecordingDevice, model: AnyObject,
         shapes: [[Int]], optimizers: [Adam], random: inout RandomStream) throws {
        let start = random.offset
        var stream = random
        let (ops, hostSteps) = try device.record { try step(&stream) }
        self.ops = ops
        self.hostSteps = hostSteps
        self.model = model
        self.shapes = shapes
        randomSeeds = [random.seed, random.normalSeed]
        recordedOffset = start
        randomCount = stream.offset &- start
        random = stream
        var randomIndices: [Int] = []
        var adamIndices: [(Int, Adam)] = []
        for (i, op) in ops.enumerated() {
            switch op {
            case let .random(_, _, seed, offset):
                guard randomSeeds.contains(seed), offset >= start, offset &- start < max(randomCount, 1) else {
                    throw DeviceError.invalidArgument(
                        "op \(i) of the recorded step (\(op.name)) draws random numbers outside the step's stream; it cannot be replayed")
                }
                randomIndices.append(i)
            case let .adam(param, _, _, _, _):
                guard let adam = optimizers.first(where: { $0.store.values === param }) else {
                    throw DeviceError.invalidArgument(
                        "op \(i) of the recorded step is an Adam update of parameters no optimiser of the step owns")
                }
                adamIndices.append((i, adam))
            default:
                break
            }
        }
        self.randomIndices = randomIndices
        self.adamIndices = adamIndices
        // The ops between two patched ones (or host steps) are prepared once by the device (OpenCL: launches
        // with their arguments set); the patched ones run as ops each time, the host steps as recorded.
        var segments: [Segment] = []
        var first = 0
        let patched = Set(randomIndices + adamIndices.map(\.0))
        let hostAt = Dictionary(grouping: hostSteps, by: \.at)
        for i in patched.union(hostAt.keys).union([ops.count]).sorted() {
            if i > first { segments.append(.prepared(try device.base.prepare(Array(ops[first..<i])))) }
            for host in hostAt[i] ?? [] { segments.append(.host(host.step)) }
            if patched.contains(i) {
                segments.append(.patched(i))
                first = i + 1
            } else {
                first = i
            }
        }
        self.segments = segments
    }

    enum Segment {
        case prepared(any PreparedOps)
        case patched(Int)
        case host(HostStep)
    }
    let segments: [Segment]

    func fits(model: AnyObject, shapes: [[Int]]) -> Bool { self.model === model && self.shapes == shapes }

    /// Runs the recorded ops again for the next step, on the base device.
    func replay(on device: any Device, random: inout RandomStream) throws {
        let shift = random.offset &- recordedOffset
        for segment in segments {
            switch segment {
            case let .prepared(prepared):
                try prepared.run()
            case let .host(step):
                try step.run(on: device)
            case let .patched(i):
                switch ops[i] {
                case let .random(distribution, out, seed, offset):
                    try device.run(.random(distribution, out: out, seed: seed, offset: offset &+ shift))
                case let .adam(param, grad, m, v, _):
                    guard let adam = adamIndices.first(where: { $0.index == i })?.adam else { continue }
                    try device.run(.adam(param: param, grad: grad, m: m, v: v, hyper: adam.advanceStep()))
                default:
                    try device.run(ops[i])
                }
            }
        }
        random.advance(by: randomCount)
    }

    /// Bytes of device memory the plan holds: every buffer its ops touch that is not a view.
    public var heldBytes: Int {
        var seen = Set<ObjectIdentifier>()
        var bytes = 0
        for op in ops {
            for b in op.buffers {
                let owner = b.parent ?? b
                if seen.insert(ObjectIdentifier(owner)).inserted { bytes += owner.byteCount }
            }
        }
        return bytes
    }
}

/// Runs training steps through recorded plans: the first step of a model and input shapes is run eagerly and
/// recorded, later ones replay its plan. Changing the model or the shapes records a new plan. With
/// `replay` false every step runs eagerly (the reference the plans are tested against).
public final class StepRecorder {
    public let device: RecordingDevice
    public let replay: Bool
    private var plans: [StepPlan] = []
    /// Steps replayed and recorded so far.
    public private(set) var replayed = 0
    public private(set) var recordings = 0

    public init(device: RecordingDevice, replay: Bool = true) {
        self.device = device
        self.replay = replay
    }

    /// The plan in use for `model` and `shapes`, if one was recorded.
    public func plan(for model: AnyObject, shapes: [[Int]]) -> StepPlan? {
        plans.first { $0.fits(model: model, shapes: shapes) }
    }

    /// One step: `body` runs the model's step on inputs already uploaded (their shapes are `shapes`), drawing
    /// from the stream it is given and updating `optimizers`.
    public func step(model: AnyObject, shapes: [[Int]], optimizers: [Adam], random: inout RandomStream,
                     _ body: (inout RandomStream) throws -> Void) throws {
        guard replay else {
            try body(&random)
            return
        }
        if let plan = plan(for: model, shapes: shapes) {
            try plan.replay(on: device.base, random: &random)
            replayed += 1
            return
        }
        // Plans of other models would only hold memory: keep those of this model.
        plans.removeAll { $0.model !== model }
        plans.append(try StepPlan(recording: body, on: device, model: model, shapes: shapes, optimizers: optimizers,
                                  random: &random))
        recordings += 1
    }
}
