import Foundation

/// The rows of a global batch one process of a data-parallel run trains on.
///
/// A process owns two blocks mirrored about the batch's middle, [s, s+k) and [B−s−k, B−s) with k = B/(2N):
/// reversing its local batch then pairs exactly the rows a single process pairs when it reverses the whole
/// batch (row i with row B−1−i), as ACAI's interpolation does. Where B/N is odd the shard is one block
/// [r·B/N, (r+1)·B/N) (valid for every model that does not pair rows).
public struct BatchShard: Sendable, Equatable {
    public let rank: Int
    public let ranks: Int
    public let globalBatch: Int
    /// The global rows owned, as blocks in local order.
    public let blocks: [Range<Int>]

    public init(rank: Int, ranks: Int, globalBatch: Int) throws {
        guard ranks >= 1, (0..<ranks).contains(rank) else {
            throw DeviceError.invalidArgument("batch shard: rank \(rank) of \(ranks) processes")
        }
        guard globalBatch % ranks == 0 else {
            throw DeviceError.invalidArgument(
                "--batch \(globalBatch) does not divide by the \(ranks) processes of the run (each trains batch/\(ranks) samples)")
        }
        self.rank = rank
        self.ranks = ranks
        self.globalBatch = globalBatch
        let local = globalBatch / ranks
        if local % 2 == 0 {
            let half = local / 2, start = rank * half
            blocks = [start..<(start + half), (globalBatch - start - half)..<(globalBatch - start)]
        } else {
            blocks = [(rank * local)..<((rank + 1) * local)]
        }
    }

    public var localBatch: Int { globalBatch / ranks }
    /// Whether reversing the local batch pairs the rows a reversal of the global batch pairs.
    public var mirrorsReversal: Bool { blocks.count == 2 || ranks == 1 }

    /// The shard's rows of `values`, a global batch of rows of `rowSize` values each.
    public func rows<T>(of values: [T], rowSize: Int) -> [T] {
        var out: [T] = []
        out.reserveCapacity(localBatch * rowSize)
        for block in blocks { out += values[(block.lowerBound * rowSize)..<(block.upperBound * rowSize)] }
        return out
    }
}

extension Collective {
    /// Replaces `buffer` (on `device`) on every process by its sum over the processes, times `scale`: a host
    /// step of the device (read, MPI all-reduce, write back), which a recorded step plan replays at the same
    /// point of the step.
    public func allReduce(_ buffer: DeviceBuffer, on device: any Device, scale: Float = 1, what: String) throws {
        let staging = HostStaging(count: buffer.count)
        try runOnHost(what, on: device, buffers: [buffer]) { [self] device, buffers in
            try staging.values.withUnsafeMutableBufferPointer { host in
                try device.read(buffers[0], into: host)
                try allReduceSum(host, what: what)
                if scale != 1 { for i in host.indices { host[i] *= scale } }
                try device.write(UnsafeBufferPointer(host), to: buffers[0])
            }
        }
    }

    /// `tensor` replaced in place by its sum over the processes (statistics such as VQ-VAE's code counts).
    public func allReduceSum(_ tensor: Tensor, what: String) throws {
        try allReduce(tensor.buffer, on: tensor.device, what: what)
    }
}

/// The host copy an all-reduce reads into, kept with its host step so a replayed step allocates nothing.
final class HostStaging {
    var values: [Float]
    init(count: Int) { values = [Float](repeating: 0, count: count) }
}

extension Collective {
    /// The global batch's rows of a per-sample tensor ([localBatch·rowsPerSample, ...] here), in global order,
    /// on every process: each places its rows at their global places in zeros and the sum over the processes
    /// fills the rest (adding zeros is exact, so the values are those of a single process).
    public func allGather(_ tensor: Tensor, shard: BatchShard, rowsPerSample: Int = 1, what: String) throws -> Tensor {
        guard tensor.shape.first == shard.localBatch * rowsPerSample else {
            throw DeviceError.invalidArgument(
                "allGather of \(what): \(tensor.shape) is not \(rowsPerSample) rows per sample of a batch of \(shard.localBatch)")
        }
        let inner = tensor.shape.dropFirst().reduce(1, *)
        let globalRows = shard.globalBatch * rowsPerSample
        let global = try Tensor.zeros([globalRows] + tensor.shape.dropFirst(), on: tensor.device)
        var local = 0
        for block in shard.blocks {
            try tensor.device.run(.copyAxisRange(src: tensor.buffer, dst: global.buffer, outer: 1,
                                                 srcAxis: tensor.shape[0], dstAxis: globalRows, inner: inner,
                                                 srcStart: local, dstStart: block.lowerBound * rowsPerSample,
                                                 length: block.count * rowsPerSample))
            local += block.count * rowsPerSample
        }
        try allReduceSum(global, what: what)
        return global
    }
}
