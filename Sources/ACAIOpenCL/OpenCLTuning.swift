/// Launch parameters of the OpenCL kernels. The defaults depend on the device type: CPU OpenCL
/// compilers (PoCL) turn explicit 16-wide vectors into AVX-512/AVX2 code but vectorise across work-items
/// poorly, so each work-item of the products computes a block of rows against 16-wide vector rows;
/// GPUs get narrower vectors and more work-items.
public struct OpenCLTuning: Sendable, Equatable, CustomStringConvertible {
    /// Rows (pixels) of the output each work-item of the blocked product and convolution kernels computes.
    public var blockRows: Int
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
    /// Work-items the split reductions (sums, filter gradients) aim for, so that every compute unit is busy.
    public var parallelItems: Int

    public init(blockRows: Int, vectorWidth: Int, vectorsPerRow: Int, blockGroupRows: Int, groupSize: Int,
                elementwiseVector: Int, parallelItems: Int) {
        self.blockRows = blockRows
        self.vectorWidth = vectorWidth
        self.vectorsPerRow = vectorsPerRow
        self.blockGroupRows = blockGroupRows
        self.groupSize = groupSize
        self.elementwiseVector = elementwiseVector
        self.parallelItems = parallelItems
    }

    /// The parameters for a device.
    public static func defaults(for info: OpenCLDeviceInfo) -> OpenCLTuning {
        let units = max(info.computeUnits, 1)
        switch info.type {
        case .gpu, .accelerator, .other:
            return OpenCLTuning(blockRows: 4, vectorWidth: 4, vectorsPerRow: 1, blockGroupRows: 16, groupSize: 256,
                                elementwiseVector: 4, parallelItems: units * 512)
        case .cpu:
            return OpenCLTuning(blockRows: 8, vectorWidth: 16, vectorsPerRow: 1, blockGroupRows: 4, groupSize: 64,
                                elementwiseVector: 16, parallelItems: units * 16)
        }
    }

    public var description: String {
        "blocks of \(blockRows) x \(vectorsPerRow)x\(vectorWidth), \(blockGroupRows) blocks per group, "
            + "groups of \(groupSize), \(elementwiseVector) elements per elementwise item, "
            + "\(parallelItems) parallel items"
    }
}
