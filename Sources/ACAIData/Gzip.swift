import CZlib

/// Streaming zlib inflation of gzip files (IDX `.gz`) and zlib streams (MATLAB miCOMPRESSED elements).
public enum Gzip {
    /// The container around the deflate data.
    public enum Format: Sendable {
        /// RFC 1952 gzip, possibly several members one after the other (as `cat a.gz b.gz`); trailing
        /// zero bytes after the last member are ignored, any other trailing bytes are an error.
        case gzip
        /// RFC 1950 zlib, one stream.
        case zlib
    }

    /// Decompresses the gzip file at `path`.
    public static func decompressFile(_ path: String) throws -> [UInt8] {
        try decompress(FileIO.readAll(path), format: .gzip, file: path)
    }

    /// Decompresses `data`; errors (`DatasetError.compression`) name `file`, the file the data came from.
    public static func decompress(_ data: [UInt8], format: Format = .gzip, file: String) throws -> [UInt8] {
        try data.withUnsafeBytes { try inflate($0, format: format, file: file) }
    }

    /// Decompresses `input`; `file` names the data's origin in errors.
    public static func inflate(_ input: UnsafeRawBufferPointer, format: Format, file: String) throws -> [UInt8] {
        let total = input.count
        guard total > 0, let base = input.baseAddress?.assumingMemoryBound(to: Bytef.self) else {
            throw DatasetError.compression(file: file, message: "empty \(format == .gzip ? "gzip" : "zlib") stream (0 bytes)")
        }
        if format == .gzip, total >= 2, !(input[0] == 0x1f && input[1] == 0x8b) {
            throw DatasetError.badMagic(file: file, found: hex(input[0], input[1]), expected: "1f 8b (gzip)")
        }

        var stream = z_stream()
        let windowBits: Int32 = format == .gzip ? 16 + MAX_WBITS : MAX_WBITS
        var rc = inflateInit2_(&stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            throw DatasetError.compression(file: file, message: "inflateInit2 failed: \(message(of: stream, rc))")
        }
        defer { inflateEnd(&stream) }

        // Output: a gzip member's trailer holds its size modulo 2^32, a good first guess; otherwise 4× input.
        var capacity = max(4 * total, 1 << 16)
        if format == .gzip, total >= 18 {
            let isize = Int(input[total - 4]) | Int(input[total - 3]) << 8 | Int(input[total - 2]) << 16
                | Int(input[total - 1]) << 24
            // Trusted only when plausible: a truncated or corrupt file ends in arbitrary bytes.
            if isize > 0 && isize <= 64 * total + (1 << 20) { capacity = isize + 1 }
        }
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var fed = 0  // input bytes handed to zlib so far
        let maxFeed = 1 << 30  // avail_in is 32-bit

        while true {
            if stream.avail_in == 0 && fed < total {
                let n = min(total - fed, maxFeed)
                stream.next_in = UnsafeMutablePointer(mutating: base + fed)
                stream.avail_in = uInt(n)
                fed += n
            }
            if produced == output.count {
                output += [UInt8](repeating: 0, count: max(output.count, 1 << 16))
            }
            let room = min(output.count - produced, Int(UInt32.max))
            rc = output.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress! + produced
                stream.avail_out = uInt(room)
                let code = CZlib.inflate(&stream, Z_NO_FLUSH)
                produced += room - Int(stream.avail_out)
                return code
            }
            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                let consumed = fed - Int(stream.avail_in)
                if format == .zlib || consumed == total { output.removeSubrange(produced...); return output }
                if total - consumed >= 2 && input[consumed] == 0x1f && input[consumed + 1] == 0x8b {
                    // Another gzip member follows: continue with a fresh state, output appended.
                    rc = inflateReset(&stream)
                    guard rc == Z_OK else {
                        throw DatasetError.compression(file: file, message: "inflateReset failed: \(message(of: stream, rc))")
                    }
                    continue
                }
                if input[consumed..<total].allSatisfy({ $0 == 0 }) { output.removeSubrange(produced...); return output }
                throw DatasetError.compression(
                    file: file, message: "\(total - consumed) bytes of trailing garbage after the gzip member ending at offset \(consumed)")
            case Z_BUF_ERROR:
                // No progress: either the output is full (grown on the next turn) or the input ran out.
                if stream.avail_out == 0 { continue }
                if stream.avail_in == 0 && fed == total {
                    throw DatasetError.compression(
                        file: file,
                        message: "unexpected end of \(format == .gzip ? "gzip" : "zlib") stream after \(total) compressed bytes (\(produced) bytes decompressed): truncated")
                }
                continue
            default:
                let consumed = fed - Int(stream.avail_in)
                throw DatasetError.compression(file: file, message: "\(message(of: stream, rc)) (near compressed byte \(consumed))")
            }
        }
    }

    private static func message(of stream: z_stream, _ rc: Int32) -> String {
        if let msg = stream.msg { return String(cString: msg) }
        switch rc {
        case Z_DATA_ERROR: return "data error"
        case Z_MEM_ERROR: return "out of memory"
        case Z_STREAM_ERROR: return "stream error"
        case Z_NEED_DICT: return "a preset dictionary is needed"
        case Z_VERSION_ERROR: return "zlib version mismatch"
        default: return "zlib error \(rc)"
        }
    }

    private static func hex(_ bytes: UInt8...) -> String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: " ")
    }
}
