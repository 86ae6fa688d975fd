/// Launch parameters of the OpenCL kernels. The defaults depend on the device type: CPU OpenCL
/// compilers (PoCL) turn explicit 16-wide vectors into AVX-512/AVX2 code but vectorise across work-items
/// poorly, so each work-item of the products computes a block of rows against 16-wide vector rows;
/// GPUs get narrower vectors and more work-items.
public struct OpenCLTuning: Sendable, Equatable, CustomStringConvertible {
    /// Rows (pixels) of the output each work-item of the blocked product and convolution kernels computes
    /// when a row is one vector wide.
    public var blockRows: Int
    /// Rows per work-item when a row is `vectorsPerRow` vectors wide.
    public var wideBlockRows: Int
    /// Vector width of the blocked kernels (4, 8 or 16): output columns per accumulator.
    public var vectorWidth: Int
    /// Accumulator vectors per row in the blocked kernels when the column count allows (1 or 2).
    public var vectorsPerRow: Int
    /// Work-items per work-group along the row blocks of the blocked kernels (CPU devices run a
    /// work-group on one thread, so this trades scheduling overhead against load balance).
    public var blockGroupRows: Int
    /// Work-group size of the simple (elementwise, copy, pooling) kernels.
    public var groupSize: Int
    /// Elements per work-item of the elementwise kernels (1, 2, 4, 8 or 16), processed as one vector.
    public var elementwiseVector: Int
    /// CPU style: data-movement work-items loop over whole rows, and the heavy kernels run in work-groups
    /// of one column block (a CPU runs a work-group on one thread); otherwise one element per work-item
    /// and wider work-groups (GPUs).
    public var serialWorkItems: Bool
    /// Work-items the split reductions (sums, filter gradients) aim for, so that every compute unit is busy.
    public var parallelItems: Int
    /// Forward and input-gradient convolutions as local-memory tiled products (`conv_fwd_tiled`): a
    /// work-group shares tiles of input and filter, which GPUs need (the register-blocked kernels reread
    /// the input from global memory once per block of output channels); CPU devices have caches instead.
    public var localTiles: Bool

    public init(blockRows: Int, wideBlockRows: Int, vectorWidth: Int, vectorsPerRow: Int, blockGroupRows: Int,
                groupSize: Int, elementwiseVector: Int, serialWorkItems: Bool, parallelItems: Int,
                localTiles: Bool = false) {
        self.blockRows = blockRows
        self.wideBlockRows = wideBlockRows
        self.vectorWidth = vectorWidth
        self.vectorsPerRow = vectorsPerRow
        self.blockGroupRows = blockGroupRows
        self.groupSize = groupSize
        self.elementwiseVector = elementwiseVector
        self.serialWorkItems = serialWorkItems
        self.parallelItems = parallelItems
        self.localTiles = localTiles
    }

    /// The parameters for a device.
    public static func defaults(for info: OpenCLDeviceInfo) -> OpenCLTuning {
        let units = max(info.computeUnits, 1)
        switch info.type {
        case .gpu, .accelerator, .other:
            return gpu(computeUnits: units)
        case .cpu:
            // Measured on PoCL 3.1 / AVX-512 (see the report in OpenCLDevice.swift's history): 12 x 16 and
            // 8 x 32 blocks keep 24 and 16 accumulators in the 32 vector registers.
            return OpenCLTuning(blockRows: 12, wideBlockRows: 8, vectorWidth: 16, vectorsPerRow: 2, blockGroupRows: 4,
                                groupSize: 64, elementwiseVector: 16, serialWorkItems: true,
                                parallelItems: units * 16)
        }
    }

    /// The GPU parameters (also used by the tests to run the GPU code paths on a CPU OpenCL device).
    public static func gpu(computeUnits: Int) -> OpenCLTuning {
        OpenCLTuning(blockRows: 4, wideBlockRows: 4, vectorWidth: 4, vectorsPerRow: 1, blockGroupRows: 16,
                     groupSize: 256, elementwiseVector: 4, serialWorkItems: false,
                     parallelItems: max(computeUnits, 1) * 512, localTiles: true)
    }

    public var description: String {
        "blocks of \(blockRows) x \(vectorWidth) or \(wideBlockRows) x \(vectorsPerRow)x\(vectorWidth), "
            + "\(blockGroupRows) blocks per group, "
            + "groups of \(groupSize), \(elementwiseVector) elements per elementwise item, "
            + "\(serialWorkItems ? "serial" : "parallel") work-items, \(parallelItems) parallel items"
            + (localTiles ? ", local-memory tiled convolutions" : "")
    }
}

extension OpenCLDeviceInfo {
    /// The same device described as a CPU (for `ACAI_OPENCL_TUNING=cpu`).
    static func cpuLike(_ info: OpenCLDeviceInfo) -> OpenCLDeviceInfo {
        var copy = info
        copy.type = .cpu
        return copy
    }
}
