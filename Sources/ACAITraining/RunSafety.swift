import ACAI
import ACAIModels
import Foundation

// What keeps a run folder safe: options checked before anything is written, one process per folder,
// a clean stop on SIGINT/SIGTERM, and the process's memory in the logs.

extension TrainOptions {
    /// Every numeric option in its accepted range, named as on the command line; `device` bounds the
    /// memory a batch may need. Throws before anything is written.
    public func validate(imageShape: [Int], device: (any Device)? = nil) throws {
        func check(_ ok: Bool, _ option: String, _ value: Any, _ expected: String) throws {
            guard ok else { throw TrainingError.badOption("\(option) \(value): expected \(expected)") }
        }
        func positiveFinite(_ v: Double?, _ option: String, max: Double) throws {
            guard let v else { return }
            try check(v.isFinite && v > 0 && v <= max, option, v, "a positive number up to \(max)")
        }
        let c = config
        guard kimg != nil || minutes != nil else { throw TrainingError.badOption("give a training budget: --kimg N or --minutes M") }
        try positiveFinite(kimg, "--kimg", max: 1_073_741_824)
        try positiveFinite(minutes, "--minutes", max: 60 * 24 * 366)
        try positiveFinite(evalKimg, "--eval-kimg", max: 1_073_741_824)
        try positiveFinite(progressSeconds, "progress interval", max: 1e12)
        try check(batch >= 2, "--batch", batch, "at least 2")
        // A batch's images exist on the host and on the device, and the activations of a step are some
        // hundred times that: refuse what cannot fit instead of trapping on a failed allocation.
        let perImage = imageShape.reduce(1, *)
        let batchBytes = Double(batch) * Double(perImage) * Double(MemoryLayout<Float>.stride)
        let stepBytes = batchBytes * 100 * Double(max(c.net.depth, 16)) / 16
        let host = Double(ProcessInfo.processInfo.physicalMemory)
        let deviceLimit = device.map { Double($0.memory.limitBytes) } ?? host
        guard batchBytes < host / 4, stepBytes < deviceLimit else {
            throw TrainingError.badOption(
                "--batch \(batch): a batch of \(imageShape) images is \(formatBytes(Int(batchBytes))) and a training step "
                    + "needs about \(formatBytes(Int(min(stepBytes, 9e18)))), more than this machine "
                    + "(\(formatBytes(Int(host))) of memory) or the device (\(formatBytes(Int(deviceLimit)))) holds")
        }
        try check(batch <= 1 << 20, "--batch", batch, "2 ... \(1 << 20)")
        let lr = Double(c.learningRate)
        try check(lr.isFinite && lr > 0 && lr <= 10, "--lr", c.learningRate, "a positive learning rate up to 10")
        try check(c.net.depth >= 1 && c.net.depth <= 4096, "--depth", c.net.depth, "1 ... 4096")
        try check(c.net.latent >= 1 && c.net.latent <= 65_536, "--latent", c.net.latent, "1 ... 65536")
        try check(c.net.latentWidth >= 1 && c.net.latentWidth <= c.net.width, "--latent-width", c.net.latentWidth,
                  "1 ... the image width \(c.net.width)")
        if let advDepth = c.advDepth { try check(advDepth >= 1 && advDepth <= 4096, "--adv-depth", advDepth, "1 ... 4096") }
        try check(c.dropoutKeep > 0 && c.dropoutKeep <= 1, "--dropout-keep", c.dropoutKeep, "a probability in (0, 1]")
        for (value, option) in [(c.noiseStd, "--noise"), (c.vaeBeta, "--vae-beta"), (c.vqCommitment, "--vq-commitment"),
                                (c.advWeight, "--adv-weight"), (c.reg, "--reg")] {
            try check(value.isFinite && value >= 0 && value <= 1e6, option, value, "a finite number >= 0")
        }
        try check(c.vqDecay > 0 && c.vqDecay < 1, "--vq-decay", c.vqDecay, "a decay in (0, 1)")
        try check(c.vqCodebookLog2 >= 1 && c.vqCodebookLog2 <= 20, "--vq-codebook-log2", c.vqCodebookLog2, "1 ... 20")
        try check(c.vqLatents >= 1 && c.vqLatents <= 1024, "--vq-latents", c.vqLatents, "1 ... 1024")
        try check(c.aaeHidden.allSatisfy { $0 >= 1 && $0 <= 1 << 16 }, "--aae-hidden", c.aaeHidden, "sizes 1 ... 65536")
        do { try c.net.validate() } catch { throw TrainingError.badOption("\(error)") }

    }
}

/// A lock on a run folder (`.lock`, flock): a second process training or drawing into the same folder is
/// refused with the first one's PID. The kernel drops the lock when the process ends, however it ends, so a
/// killed run never leaves it stuck.
public final class RunFolderLock {
    public let path: String
    private let fd: Int32

    public init(folder: String) throws {
        path = folder + "/.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError.io("cannot open the run folder lock \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            var holder = ""
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                holder = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            close(fd)
            if reason == EWOULDBLOCK {
                throw TrainingError.badOption(
                    "run folder \(folder) is in use by another process (\(holder.isEmpty ? "unknown" : holder)); "
                        + "wait for it to finish or choose another --out")
            }
            throw TrainingError.io("cannot lock \(path): \(String(cString: strerror(reason)))")
        }
        let note = "pid \(getpid()): \(CommandLine.arguments.joined(separator: " "))\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { Foundation.write(fd, $0, strlen($0)) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// SIGINT and SIGTERM ask the training loop to stop: it writes a checkpoint at the current step and returns.
/// A second signal while it does so ends the process at once.
public enum StopRequest {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    nonisolated(unsafe) private static var installed = false

    /// The signal that asked for a stop, or 0.
    public static var signal: Int32 { Int32(flag) }

    public static func install() {
        guard !installed else { return }
        installed = true
        for sig in [SIGINT, SIGTERM] {
            _ = Foundation.signal(sig) { received in
                if StopRequest.flag != 0 { _exit(128 + received) }
                StopRequest.flag = sig_atomic_t(received)
            }
        }
    }

    /// For tests: as if the signal had arrived.
    public static func request(_ sig: Int32) { flag = sig_atomic_t(sig) }
    public static func clear() { flag = 0 }
}

/// The process's resident memory, from /proc/self/statm (0 where there is none).
public func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

extension TrainOptions {
    /// The rows of each global batch (`--batch`) that this process trains in a run of `replicas`; refuses a
    /// batch the processes cannot share.
    public func shard(over replicas: any Collective) throws -> BatchShard {
        let n = replicas.size
        guard batch % n == 0 else {
            throw TrainingError.badOption("--batch \(batch) does not divide by the \(n) processes of this run: --batch is the "
                                          + "global batch, each process trains batch/\(n) of it (try --batch \(max(n, batch / n * n)))")
        }
        let shard = try BatchShard(rank: replicas.rank, ranks: n, globalBatch: batch)
        if model == .acai, !shard.mirrorsReversal {
            throw TrainingError.badOption("--batch \(batch) over \(n) processes: ACAI pairs each sample with its mirror in the "
                                          + "batch, so each process needs an even share; --batch must divide by \(2 * n)")
        }
        return shard
    }
}
