import Foundation

/// A device allocation of `count` float32 values, or a view of part of one. The handle is backend-specific
/// (a host pointer on the CPU, a `cl_mem` on OpenCL). When the last reference goes, an allocation returns
/// to its pool; a view releases its own handle and lets go of the allocation it looks into.
public final class DeviceBuffer: @unchecked Sendable {
    public let count: Int
    /// Backend-owned handle; only the backend that allocated it interprets it.
    public let handle: UnsafeMutableRawPointer
    public let pool: BufferPool
    /// For a view: the allocation it looks into (kept alive by the view) and where it starts, in floats.
    public let parent: DeviceBuffer?
    public let offset: Int
    private let releaseView: (@Sendable (UnsafeMutableRawPointer) -> Void)?

    init(count: Int, handle: UnsafeMutableRawPointer, pool: BufferPool) {
        self.count = count
        self.handle = handle
        self.pool = pool
        self.parent = nil
        self.offset = 0
        self.releaseView = nil
    }

    /// A view of `count` floats of `parent` from `offset`, with the backend's own handle for it (the
    /// parent's pointer moved on the CPU, a sub-buffer on OpenCL). `release` frees that handle.
    public init(viewOf parent: DeviceBuffer, offset: Int, count: Int, handle: UnsafeMutableRawPointer,
                release: (@Sendable (UnsafeMutableRawPointer) -> Void)?) {
        precondition(parent.parent == nil, "a view of a view")
        precondition(offset >= 0 && count >= 0 && offset + count <= parent.count, "view outside its buffer")
        self.count = count
        self.handle = handle
        self.pool = parent.pool
        self.parent = parent
        self.offset = offset
        self.releaseView = release
    }

    deinit {
        if parent != nil { releaseView?(handle) } else { pool.release(handle, count: count) }
    }

    public var byteCount: Int { count * MemoryLayout<Float>.stride }

    /// True when both are the same memory (the same allocation, or views of the same range).
    public func isSameMemory(as other: DeviceBuffer) -> Bool {
        if self === other { return true }
        let a = parent ?? self, b = other.parent ?? other
        return a === b && offset == other.offset && count == other.count
    }
}

/// Byte counters of a device's allocator.
public struct MemoryStats: Sendable, CustomStringConvertible {
    /// Bytes held by live buffers.
    public var liveBytes: Int
    /// Highest `liveBytes` seen.
    public var peakBytes: Int
    /// Bytes of freed buffers kept for reuse.
    public var cachedBytes: Int
    /// The most `liveBytes` may reach.
    public var limitBytes: Int

    public var description: String {
        "live \(formatBytes(liveBytes)), peak \(formatBytes(peakBytes)), cached \(formatBytes(cachedBytes)), limit \(formatBytes(limitBytes))"
    }
}

/// A size-keyed pool of device allocations with a cap on live bytes and on cached bytes.
/// Backends supply the raw allocate/free; the pool does reuse, accounting and the out-of-memory error.
public final class BufferPool: @unchecked Sendable {
    public typealias RawAllocate = (_ bytes: Int) -> UnsafeMutableRawPointer?
    public typealias RawFree = (_ handle: UnsafeMutableRawPointer, _ bytes: Int) -> Void

    private let lock = NSLock()
    private let deviceName: String
    private let rawAllocate: RawAllocate
    private let rawFree: RawFree
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]  // element count -> handles
    private var stats: MemoryStats
    /// Freed buffers beyond this many bytes are returned to the system instead of being cached.
    public let cacheLimitBytes: Int

    public init(deviceName: String, limitBytes: Int, cacheLimitBytes: Int,
                allocate: @escaping RawAllocate, free: @escaping RawFree) {
        self.deviceName = deviceName
        self.rawAllocate = allocate
        self.rawFree = free
        self.cacheLimitBytes = cacheLimitBytes
        self.stats = MemoryStats(liveBytes: 0, peakBytes: 0, cachedBytes: 0, limitBytes: limitBytes)
    }

    deinit { clearCache() }

    public var memory: MemoryStats { lock.withLock { stats } }

    /// A buffer of `count` floats: a cached one of the same size if there is one, else a new one.
    public func allocate(_ count: Int) throws -> DeviceBuffer {
        precondition(count >= 0, "negative buffer size")
        let elements = max(count, 1)  // zero-sized device allocations are invalid in OpenCL
        let bytes = elements * MemoryLayout<Float>.stride
        let reused: UnsafeMutableRawPointer? = try lock.withLock {
            if stats.liveBytes + bytes > stats.limitBytes {
                throw DeviceError.outOfMemory(device: deviceName, requested: bytes, inUse: stats.liveBytes,
                                              limit: stats.limitBytes)
            }
            stats.liveBytes += bytes
            stats.peakBytes = max(stats.peakBytes, stats.liveBytes)
            if let handle = free[elements]?.popLast() {
                stats.cachedBytes -= bytes
                return handle
            }
            return nil
        }
        if let reused { return DeviceBuffer(count: elements, handle: reused, pool: self) }
        if let handle = rawAllocate(bytes) { return DeviceBuffer(count: elements, handle: handle, pool: self) }
        // The system refused: give back everything cached and try once more.
        clearCache()
        if let handle = rawAllocate(bytes) { return DeviceBuffer(count: elements, handle: handle, pool: self) }
        let inUse = lock.withLock {
            stats.liveBytes -= bytes
            return stats.liveBytes
        }
        throw DeviceError.outOfMemory(device: deviceName, requested: bytes, inUse: inUse, limit: stats.limitBytes)
    }

    func release(_ handle: UnsafeMutableRawPointer, count: Int) {
        let bytes = count * MemoryLayout<Float>.stride
        let keep: Bool = lock.withLock {
            stats.liveBytes -= bytes
            guard stats.cachedBytes + bytes <= cacheLimitBytes else { return false }
            stats.cachedBytes += bytes
            free[count, default: []].append(handle)
            return true
        }
        if !keep { rawFree(handle, bytes) }
    }

    /// Returns every cached allocation to the system.
    public func clearCache() {
        let released: [(Int, [UnsafeMutableRawPointer])] = lock.withLock {
            let all = free.map { ($0.key, $0.value) }
            free.removeAll()
            stats.cachedBytes = 0
            return all
        }
        for (count, handles) in released {
            for handle in handles { rawFree(handle, count * MemoryLayout<Float>.stride) }
        }
    }
}
