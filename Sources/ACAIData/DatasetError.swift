/// Everything that can go wrong while reading a dataset from disk. Every case names the file (or folder)
/// concerned, so that its `description` can be shown to a user as it is.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file the loader needs is absent; `expected` says what was looked for.
    case missingFile(path: String, expected: String)
    /// A folder holds none of the files a dataset needs (e.g. no `*.jpg` in `img_align_celeba`).
    case noImages(directory: String, expected: String)
    /// The file exists but could not be read (permissions, I/O error, a folder in its place).
    case unreadable(path: String, reason: String)
    /// The file ends before `expected` bytes could be read at byte `offset`; `available` bytes were left.
    case truncated(file: String, offset: Int, expected: Int, available: Int)
    /// The file does not start with the magic number (or signature) of its format.
    case badMagic(file: String, found: String, expected: String)
    /// An image file and its label file (or variables `X` and `y`) disagree on the number of examples.
    case countMismatch(imagesFile: String, images: Int, labelsFile: String, labels: Int)
    /// The file is structurally wrong for its format (bad dimensions, a label out of range, ...).
    case invalidFormat(file: String, reason: String)
    /// A MATLAB file lacks a variable the loader needs; `found` lists the variables that it holds.
    case missingVariable(file: String, missing: [String], found: [String])
    /// libjpeg could not decode the file; `message` is libjpeg's.
    case jpegDecode(file: String, message: String)
    /// A gzip or zlib stream is corrupt or cut short; `message` is zlib's (or says what was wrong).
    case compression(file: String, message: String)
    /// An image is too small for the fixed crop of its dataset.
    case imageTooSmall(file: String, height: Int, width: Int, minimumHeight: Int, minimumWidth: Int)
    /// Two files of one split disagree on the image shape (e.g. SVHN `train` and `extra`).
    case shapeMismatch(file: String, found: [Int], expected: [Int], reference: String)

    public var description: String {
        switch self {
        case let .missingFile(path, expected):
            return "missing file \(path): \(expected)"
        case let .noImages(directory, expected):
            return "no images in \(directory): \(expected)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .truncated(file, offset, expected, available):
            return "truncated file \(file): expected \(expected) bytes at offset \(offset), only \(available) available"
        case let .badMagic(file, found, expected):
            return "wrong magic number in \(file): found \(found), expected \(expected)"
        case let .countMismatch(imagesFile, images, labelsFile, labels):
            return "image/label count mismatch: \(images) images in \(imagesFile) but \(labels) labels in \(labelsFile)"
        case let .invalidFormat(file, reason):
            return "invalid file \(file): \(reason)"
        case let .missingVariable(file, missing, found):
            let list = found.isEmpty ? "none" : found.joined(separator: ", ")
            return "MATLAB file \(file) lacks variable(s) \(missing.joined(separator: ", ")); variables found: \(list)"
        case let .jpegDecode(file, message):
            return "cannot decode JPEG \(file): \(message)"
        case let .compression(file, message):
            return "corrupt compressed data in \(file): \(message)"
        case let .imageTooSmall(file, height, width, minimumHeight, minimumWidth):
            return "image \(file) is \(height)x\(width) (HxW), smaller than the \(minimumHeight)x\(minimumWidth) the crop needs"
        case let .shapeMismatch(file, found, expected, reference):
            let f = found.map(String.init).joined(separator: "x"), e = expected.map(String.init).joined(separator: "x")
            return "image shape \(f) in \(file) differs from \(e) in \(reference)"
        }
    }
}
