import ACAI

/// Sums every loss on the device over the steps since the last read-back, so the host waits for the
/// device once per progress line instead of every step, and a logged mean covers every step. The sums
/// live in one buffer (one read); adding a step's losses is one op, part of the recorded step.
final class LossAccumulator {
    let names: [String]
    let device: any Device
    let sums: DeviceBuffer
    /// Steps added since the last `collect`.
    private(set) var steps = 0

    /// `device` is where the sums are cleared and read: the base device, outside any recording.
    init(names: [String], device: any Device) throws {
        self.names = names
        self.device = device
        sums = try device.allocate(max(names.count, 1))
        try device.run(.fill(out: sums, value: 0))
    }

    /// Adds this step's losses, with the op run through `stepDevice` (so a step plan records it).
    func add(_ losses: [String: Tensor], through stepDevice: any Device) throws {
        guard losses.keys.sorted() == names else {
            throw TrainingError.badOption("the model's losses changed from \(names) to \(losses.keys.sorted())")
        }
        if names.isEmpty { return }
        try stepDevice.run(.accumulateScalars(sources: names.map { losses[$0]!.buffer }, out: sums))
    }

    /// Counts a step whose losses were added (by running or replaying it).
    func countStep() { steps += 1 }

    /// Reads the sums (one wait for the device) and returns them with the step count; `clear` then starts
    /// new sums.
    func collect(clear: Bool) throws -> (sums: [String: Double], steps: Int) {
        guard steps > 0 else { return ([:], 0) }
        let values = try device.read(sums)
        var out: [String: Double] = [:]
        for (i, name) in names.enumerated() { out[name] = Double(values[i]) }
        let counted = steps
        if clear {
            steps = 0
            try device.run(.fill(out: sums, value: 0))
        }
        return (out, counted)
    }
}

extension Collective {
    /// Each loss's sum averaged over the processes (each process's is over its shard). Every process calls it
    /// with the same `names`.
    func mean(of sums: [String: Double], names: [String], what: String) throws -> [String: Double] {
        var values = names.map { sums[$0] ?? 0 }
        try allReduceSum(&values, what: what)
        var out = sums
        for (i, name) in names.enumerated() { out[name] = values[i] / Double(size) }
        return out
    }
}
