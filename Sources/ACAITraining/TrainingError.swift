import Foundation

/// Errors of training runs; each names the file, option or value at fault.
public enum TrainingError: Error, CustomStringConvertible, Sendable {
    case badCheckpoint(String)
    case nonFinite(loss: String, value: Float, step: Int, checkpoint: String?)
    case badOption(String)
    case io(String)
    /// SIGINT or SIGTERM stopped the run after writing a checkpoint at the current step.
    case interrupted(signal: Int32, step: Int, checkpoint: String, resume: String)

    public var description: String {
        switch self {
        case let .badCheckpoint(message): return message
        case let .nonFinite(loss, value, step, checkpoint):
            return "training stopped: loss '\(loss)' became \(value) at step \(step); "
                + (checkpoint.map { "the last good checkpoint is kept at \($0)" } ?? "no checkpoint had been written yet")
        case let .badOption(message): return message
        case let .io(message): return message
        case let .interrupted(signal, step, checkpoint, resume):
            return "training stopped by \(signal == SIGTERM ? "SIGTERM" : "SIGINT") at step \(step); the checkpoint "
                + "\(checkpoint) holds that step; resume with: \(resume)"
        }
    }
}
