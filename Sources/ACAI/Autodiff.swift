/// Reverse-mode automatic differentiation.
///
/// Every op that has an input carrying a gradient node records a node with its inputs' nodes and a
/// backward rule written in tensor ops, so a graph built on OpenCL differentiates on OpenCL. The graph
/// is the tape: `gradients(of:wrt:)` orders it topologically and runs the rules in reverse, visiting only
/// nodes that lie between the loss and the requested parameters. The graph is not consumed, so several
/// losses over disjoint parameter sets can be differentiated from one forward pass (ACAI trains the
/// autoencoder and the critic from the same batch).
final class GradNode {
    /// The nodes of the op's inputs (nil for inputs without gradient).
    let inputs: [GradNode?]
    /// Maps the gradient of the op's output to gradients of its inputs. `needed[i]` says whether input i
    /// leads to a requested parameter; rules skip the work for the others and return nil there.
    let backward: (_ grad: Tensor, _ needed: [Bool]) throws -> [Tensor?]
    /// Set on the leaf node of a parameter.
    weak var parameter: Parameter?
    let debugName: String

    init(_ debugName: String, inputs: [GradNode?], backward: @escaping (Tensor, [Bool]) throws -> [Tensor?]) {
        self.debugName = debugName
        self.inputs = inputs
        self.backward = backward
    }

    init(leafOf parameter: Parameter) {
        debugName = "parameter \(parameter.name)"
        inputs = []
        backward = { _, _ in [] }
        self.parameter = parameter
    }
}

extension Tensor {
    /// Wraps a freshly computed output with a gradient node when any input needs one.
    static func result(_ out: Tensor, _ name: String, _ inputs: [Tensor],
                       backward: @escaping (_ grad: Tensor, _ needed: [Bool]) throws -> [Tensor?]) -> Tensor {
        let nodes = inputs.map(\.node)
        guard nodes.contains(where: { $0 != nil }) else { return out }
        return Tensor(shape: out.shape, buffer: out.buffer, device: out.device,
                      node: GradNode(name, inputs: nodes, backward: backward))
    }
}

/// Gradients of the scalar `loss` with respect to each parameter; a parameter the loss does not depend
/// on gets zeros.
public func gradients(of loss: Tensor, wrt parameters: [Parameter]) throws -> [Tensor] {
    guard loss.count == 1 else {
        throw DeviceError.invalidArgument("gradients(of:) needs a scalar loss, got shape \(loss.shape)")
    }
    let seed = try Tensor.full(loss.shape, 1, on: loss.device)
    return try gradients(of: loss, seed: seed, wrt: parameters)
}

/// Vector-Jacobian product: gradients of Σ seed·output with respect to each parameter.
public func gradients(of output: Tensor, seed: Tensor, wrt parameters: [Parameter]) throws -> [Tensor] {
    guard seed.shape == output.shape else {
        throw DeviceError.invalidArgument("gradient seed shape \(seed.shape) differs from output shape \(output.shape)")
    }
    let targets = Set(parameters.map { ObjectIdentifier($0.leaf) })
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
                  let g = grads[ObjectIdentifier(node)] else { continue }
            let needed = node.inputs.map { $0.map { reaches[ObjectIdentifier($0)] == true } ?? false }
            let inputGrads = try node.backward(g, needed)
            for (input, grad) in zip(node.inputs, inputGrads) {
                guard let input, let grad, reaches[ObjectIdentifier(input)] == true else { continue }
                let key = ObjectIdentifier(input)
                grads[key] = try grads[key].map { try $0.detached() + grad } ?? grad
            }
        }
    }
    return try parameters.map { p in
        try grads[ObjectIdentifier(p.leaf)]?.detached() ?? Tensor.zeros(p.shape, on: p.device)
    }
}
