/// Reverse-mode automatic differentiation.
///
/// Every op that has an input carrying a gradient node records a node with its inputs' nodes and a
/// backward rule written in tensor ops, so a graph built on OpenCL differentiates on OpenCL. The graph
/// is the tape: `gradients(of:wrt:)` orders it topologically and runs the rules in reverse, visiting only
/// nodes that lie between the loss and the requested parameters. The graph is not consumed, so several
/// losses over disjoint parameter sets can be differentiated from one forward pass (ACAI trains the
/// autoencoder and the critic from the same batch).
///
/// `backpropagate(_:into:)` writes the gradients into an optimiser's flat gradient buffer instead of
/// returning tensors: ops whose inputs are parameters (convolution, product, bias add) may have a second
/// rule, `backwardInto`, that writes the gradient of such an input straight into its view of that buffer
/// (overwriting it, or adding to it when the parameter has already received a contribution).
final class GradNode {
    /// The nodes of the op's inputs (nil for inputs without gradient).
    let inputs: [GradNode?]
    /// Maps the gradient of the op's output to gradients of its inputs. `needed[i]` says whether input i
    /// leads to a requested parameter; rules skip the work for the others and return nil there.
    let backward: (_ grad: Tensor, _ needed: [Bool]) throws -> [Tensor?]
    /// The same rule, told where the gradients of parameter inputs go. For an input with a sink it either
    /// writes there and returns the sink's tensor, or returns a tensor as `backward` does.
    let backwardInto: ((_ grad: Tensor, _ needed: [Bool], _ sinks: [GradientSink?]) throws -> [Tensor?])?
    /// Whether the rules take a gradient with a row support (`RowSupport`) as it is; others get it dense.
    let acceptsRowSupport: Bool
    /// Set on the leaf node of a parameter.
    weak var parameter: Parameter?
    let debugName: String

    init(_ debugName: String, inputs: [GradNode?], backward: @escaping (Tensor, [Bool]) throws -> [Tensor?],
         backwardInto: ((Tensor, [Bool], [GradientSink?]) throws -> [Tensor?])? = nil,
         acceptsRowSupport: Bool = false) {
        self.debugName = debugName
        self.inputs = inputs
        self.backward = backward
        self.backwardInto = backwardInto
        self.acceptsRowSupport = acceptsRowSupport
    }

    init(leafOf parameter: Parameter) {
        debugName = "parameter \(parameter.name)"
        inputs = []
        backward = { _, _ in [] }
        backwardInto = nil
        acceptsRowSupport = false
        self.parameter = parameter
    }
}

/// Where the gradient of a parameter input goes: its view of a flat gradient buffer, to be overwritten
/// (`accumulate` false: the first contribution of this backward pass) or added to.
public struct GradientSink {
    public let tensor: Tensor
    public let accumulate: Bool
}

extension Tensor {
    /// Wraps a freshly computed output with a gradient node when any input needs one. `acceptsRowSupport`:
    /// the rules handle a gradient that is zero outside some rows (`RowSupport`).
    static func result(_ out: Tensor, _ name: String, _ inputs: [Tensor], acceptsRowSupport: Bool = false,
                       backward: @escaping (_ grad: Tensor, _ needed: [Bool]) throws -> [Tensor?],
                       backwardInto: ((_ grad: Tensor, _ needed: [Bool], _ sinks: [GradientSink?]) throws -> [Tensor?])? = nil)
        -> Tensor {
        let nodes = inputs.map(\.node)
        guard nodes.contains(where: { $0 != nil }) else { return out }
        return Tensor(shape: out.shape, buffer: out.buffer, device: out.device,
                      node: GradNode(name, inputs: nodes, backward: backward, backwardInto: backwardInto,
                                     acceptsRowSupport: acceptsRowSupport))
    }
}

/// Gradients of the scalar `loss` with respect to each parameter; a parameter the loss does not depend
/// on gets zeros.
public func gradients(of loss: Tensor, wrt parameters: [Parameter]) throws -> [Tensor] {
    try checkScalar(loss)
    let seed = try Tensor.full(loss.shape, 1, on: loss.device)
    return try gradients(of: loss, seed: seed, wrt: parameters)
}

/// Vector-Jacobian product: gradients of Σ seed·output with respect to each parameter.
public func gradients(of output: Tensor, seed: Tensor, wrt parameters: [Parameter]) throws -> [Tensor] {
    let grads = try runBackward(from: output, seed: seed, targets: parameters, sinks: nil)
    return try zip(parameters, grads).map { p, g in try g?.detached() ?? Tensor.zeros(p.shape, on: p.device) }
}

/// The gradients of the scalar `loss` with respect to the store's parameters, written into its flat
/// gradient buffer (zeros for parameters the loss does not depend on).
public func backpropagate(_ loss: Tensor, into store: ParameterStore) throws {
    try checkScalar(loss)
    let seed = try store.unitSeed.reshaped(loss.shape)
    _ = try runBackward(from: loss, seed: seed, targets: store.parameters, sinks: store.gradientViews)
}

private func checkScalar(_ loss: Tensor) throws {
    guard loss.count == 1 else {
        throw DeviceError.invalidArgument("gradients(of:) needs a scalar loss, got shape \(loss.shape)")
    }
}

/// The backward pass. Without sinks it returns each target's gradient (nil: none reached it); with sinks
/// (one per target) it writes them there and returns nils.
private func runBackward(from output: Tensor, seed: Tensor, targets parameters: [Parameter],
                         sinks: [Tensor]?) throws -> [Tensor?] {
    guard seed.shape == output.shape else {
        throw DeviceError.invalidArgument("gradient seed shape \(seed.shape) differs from output shape \(output.shape)")
    }
    let targets = Set(parameters.map { ObjectIdentifier($0.leaf) })
    var sinkOf: [ObjectIdentifier: Tensor] = [:]
    var written: Set<ObjectIdentifier> = []
    if let sinks {
        for (p, sink) in zip(parameters, sinks) { sinkOf[ObjectIdentifier(p.leaf)] = sink }
    }
    var grads: [ObjectIdentifier: Tensor] = [:]
    if let root = output.node {
        // Topological order (inputs before outputs) of the nodes from which a target is reachable.
        var order: [GradNode] = []
        var reaches: [ObjectIdentifier: Bool] = [:]
        func visit(_ node: GradNode) -> Bool {
            let key = ObjectIdentifier(node)
            if let known = reaches[key] { return known }
            reaches[key] = false  // guards against revisiting while in progress (graphs are acyclic)
            var any = targets.contains(key)
            for input in node.inputs { if let input, visit(input) { any = true } }
            reaches[key] = any
            if any { order.append(node) }
            return any
        }
        _ = visit(root)
        grads[ObjectIdentifier(root)] = seed
        for node in order.reversed() {
            guard node.parameter == nil || !node.inputs.isEmpty,
                  var g = grads.removeValue(forKey: ObjectIdentifier(node)) else { continue }
            if !node.acceptsRowSupport { g = try g.materialized() }
            let needed = node.inputs.map { $0.map { reaches[ObjectIdentifier($0)] == true } ?? false }
            let nodeSinks: [GradientSink?] = node.inputs.map { input in
                guard let input, let sink = sinkOf[ObjectIdentifier(input)] else { return nil }
                return GradientSink(tensor: sink, accumulate: written.contains(ObjectIdentifier(input)))
            }
            let inputGrads: [Tensor?]
            if let into = node.backwardInto, nodeSinks.contains(where: { $0 != nil }) {
                inputGrads = try into(g, needed, nodeSinks)
            } else {
                inputGrads = try node.backward(g, needed)
            }
            for (i, (input, grad)) in zip(node.inputs, inputGrads).enumerated() {
                guard let input, var grad, reaches[ObjectIdentifier(input)] == true else { continue }
                let key = ObjectIdentifier(input)
                if let sink = nodeSinks[i] {
                    grad = try grad.materialized()
                    if !grad.buffer.isSameMemory(as: sink.tensor.buffer) {
                        if sink.accumulate {
                            try sink.tensor.device.run(.binary(.add, a: sink.tensor.buffer, b: grad.buffer,
                                                               out: sink.tensor.buffer,
                                                               layout: BroadcastLayout.make(sink.tensor.shape, grad.shape)!,
                                                               alpha: 0))
                        } else {
                            try grad.copy(into: sink.tensor)
                        }
                    }
                    written.insert(key)
                } else {
                    grads[key] = try grads[key].map { try $0.materialized().detached() + grad.materialized() } ?? grad
                }
            }
        }
    }
    if let sinks {
        for (p, sink) in zip(parameters, sinks) where !written.contains(ObjectIdentifier(p.leaf)) {
            try sink.device.run(.fill(out: sink.buffer, value: 0))
        }
        return parameters.map { _ in nil }
    }
    return try parameters.map { try grads[ObjectIdentifier($0.leaf)]?.materialized() }
}
