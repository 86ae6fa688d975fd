import Foundation

/// Adam with TensorFlow 1's update rule (the reference's `tf.train.AdamOptimizer`):
/// lr_t = lr·√(1−β2^t)/(1−β1^t); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; θ ← θ − lr_t·m/(√v + ε).
/// The parameters, their gradients and moments live in one `ParameterStore`, so a step is one op.
public final class Adam {
    public let parameters: [Parameter]
    public let store: ParameterStore
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public private(set) var step: Int = 0
    /// The processes training replicas of these parameters in a data-parallel run (nil: this process alone).
    /// Each update first averages the gradients over them: one all-reduce of the flat gradient buffer.
    public var replicas: (any Collective)?
    /// What the all-reduce is called in errors and timings ("autoencoder gradients").
    public var name = "gradients"

    public init(parameters: [Parameter], learningRate: Float = 1e-4, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8) throws {
        self.parameters = parameters
        self.store = try ParameterStore(parameters: parameters)
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    /// First and second moments, one pair per parameter (views of the store).
    public var moments: [(m: Tensor, v: Tensor)] {
        Array(zip(store.firstMomentViews, store.secondMomentViews)).map { (m: $0.0, v: $0.1) }
    }

    /// The gradient of each parameter as last computed (views of the store).
    public var gradients: [Tensor] { store.gradientViews }

    /// Differentiates `loss` with respect to every parameter, into the store's gradient buffer.
    public func computeGradients(of loss: Tensor) throws {
        try backpropagate(loss, into: store)
    }

    /// One Adam step from the store's gradients: a single op over the flat buffers.
    public func applyGradients() throws {
        if let replicas, replicas.isDistributed {
            try replicas.allReduce(store.gradients, on: device, scale: 1 / Float(replicas.size), what: "the all-reduce of the \(name)")
        }
        step += 1
        try device.run(.adam(param: store.values, grad: store.gradients, m: store.firstMoments,
                             v: store.secondMoments, hyper: hyperparameters(step: step)))
    }

    /// Gradients of `loss`, then one step.
    public func minimize(_ loss: Tensor) throws {
        try computeGradients(of: loss)
        try applyGradients()
    }

    /// Applies one step with `grads[i]` the gradient of `parameters[i]` (gradients computed elsewhere).
    public func update(_ grads: [Tensor]) throws {
        guard grads.count == parameters.count else {
            throw DeviceError.invalidArgument("Adam.update: \(grads.count) gradients for \(parameters.count) parameters")
        }
        for (i, p) in parameters.enumerated() {
            guard grads[i].shape == p.shape else {
                throw DeviceError.invalidArgument("Adam.update: gradient of \(p.name) has shape \(grads[i].shape), expected \(p.shape)")
            }
            try grads[i].copy(into: store.gradientViews[i])
        }
        try applyGradients()
    }

    /// The op's hyperparameters at step `t` (lr_t computed in float64 on the host, as before).
    public func hyperparameters(step t: Int) -> AdamStep {
        let t = Double(t)
        let lrT = Double(learningRate) * (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t))
        return AdamStep(learningRateT: Float(lrT), beta1: beta1, beta2: beta2, epsilon: epsilon)
    }

    var device: any Device { store.device }

    /// Counts a step taken by replaying a recorded `.adam` op (see `StepPlan`) and returns its hyperparameters.
    func advanceStep() -> AdamStep {
        step += 1
        return hyperparameters(step: step)
    }
}

extension Adam {
    /// Sets the step counter (checkpoint resume; the moments are restored as tensors).
    public func restoreStep(_ step: Int) { self.step = step }
}
