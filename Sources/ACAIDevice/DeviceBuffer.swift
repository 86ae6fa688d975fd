import Foundation

/// A device allocation of `count` float32 values. The handle is backend-specific (a host pointer on
/// the CPU, a `cl_mem` on OpenCL). When the last reference goes, the allocation returns to its pool.
public final class DeviceBuffer: @unchecked Sendable {
    public let count: Int
    /// Backend-owned handle; only the backend that allocated it interprets it.
    public let handle: UnsafeMutableRawPointer
    public let pool: BufferPool

    init(count: Int, handle: UnsafeMutableRawPointer, pool: BufferPool) {
        self.count = count
        self.handle = handle
        self.pool = pool
    }

    deinit { pool.release(handle, count: count) }

    public var byteCount: Int { count * MemoryLayout<Float>.stride }
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
