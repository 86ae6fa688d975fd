import Foundation

/// Adam with TensorFlow 1's update rule (the reference's `tf.train.AdamOptimizer`):
/// lr_t = lr·√(1−β2^t)/(1−β1^t); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; θ ← θ − lr_t·m/(√v + ε).
/// One fused op per parameter on the device.
public final class Adam {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public private(set) var step: Int = 0
    /// First and second moments, one pair per parameter.
    public private(set) var moments: [(m: Tensor, v: Tensor)]

    public init(parameters: [Parameter], learningRate: Float = 1e-4, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8) throws {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        moments = try parameters.map { p in
            (try Tensor.zeros(p.shape, on: p.device), try Tensor.zeros(p.shape, on: p.device))
        }
    }

    /// Applies one step with `grads[i]` the gradient of `parameters[i]`.
    public func update(_ grads: [Tensor]) throws {
        guard grads.count == parameters.count else {
            throw DeviceError.invalidArgument("Adam.update: \(grads.count) gradients for \(parameters.count) parameters")
        }
        step += 1
        let t = Double(step)
        let lrT = Double(learningRate) * (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t))
        let hyper = AdamStep(learningRateT: Float(lrT), beta1: beta1, beta2: beta2, epsilon: epsilon)
        for (i, p) in parameters.enumerated() {
            guard grads[i].shape == p.shape else {
                throw DeviceError.invalidArgument("Adam.update: gradient of \(p.name) has shape \(grads[i].shape), expected \(p.shape)")
            }
            try p.device.run(.adam(param: p.buffer, grad: grads[i].buffer, m: moments[i].m.buffer,
                                   v: moments[i].v.buffer, hyper: hyper))
        }
    }
}

extension Adam {
    /// Sets the step counter (checkpoint resume; the moments are restored as tensors).
    public func restoreStep(_ step: Int) { self.step = step }
}
