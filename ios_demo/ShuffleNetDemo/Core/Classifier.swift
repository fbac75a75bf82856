import CoreGraphics
import CoreML
import Foundation
import Vision

/// The files `sdeploy bundle --app ios` put into a bundle (the app's, or the test bundle's), read and checked.
struct BundledModel: Sendable {
    let config: ModelConfig
    let labels: [String]
    /// The compiled model: Xcode compiles ShuffleNetClassifier.mlpackage into ShuffleNetClassifier.mlmodelc.
    let modelURL: URL
    /// selftest.json, when the bundle has one.
    let selfTestURL: URL?

    static func load(from bundle: Bundle) throws -> BundledModel {
        guard let configURL = resource("model.json", in: bundle) else {
            throw DemoError.notBundled("model.json")
        }
        let config: ModelConfig
        do {
            config = try ModelConfig.decode(Data(contentsOf: configURL))
        } catch let error as DemoError {
            throw error
        } catch {
            throw DemoError.badConfig("model.json cannot be read: \(error.localizedDescription)")
        }
        guard let modelURL = resource(config.compiledModelName + ".mlmodelc", in: bundle) else {
            throw DemoError.notBundled(config.modelFile)
        }
        guard let labelsURL = resource(config.labelsFile, in: bundle) else {
            throw DemoError.notBundled(config.labelsFile)
        }
        let labels = try Labels.load(from: labelsURL, count: config.numClasses)
        let selfTestURL = config.selftestFile.flatMap { resource($0, in: bundle) }
        return BundledModel(config: config, labels: labels, modelURL: modelURL, selfTestURL: selfTestURL)
    }

    private static func resource(_ name: String, in bundle: Bundle) -> URL? {
        guard let url = bundle.resourceURL?.appendingPathComponent(name),
              FileManager.default.fileExists(atPath: url.path) else { return nil }
        return url
    }
}

/// One model call: the output values as Double, and the wall time of `MLModel.prediction` alone.
struct ModelRun: Sendable {
    let values: [Double]
    let areLogits: Bool
    let milliseconds: Double
}

struct Classification: Sendable {
    let predictions: [Prediction]
    /// Wall time of the prediction call: Core ML inference only, not decoding, crop or scale.
    let milliseconds: Double
}

/// The bundled Core ML model, run off the main thread: an actor, so decoding and inference never block the UI
/// and one model instance never runs two predictions at once.
///
/// Photos and the self-test go through the same two steps: `prepare` (ImageIO decode + downsampling) and
/// `run` (Core ML's crop/scale to the contract's centre square, then `MLModel.prediction`). The model's raw
/// `logits` output is read as a multi-array, which the self-test compares with Python's logits; the top-5 list
/// is `Scores.top` over the same numbers, with the labels from labels.txt.
actor Classifier {
    let config: ModelConfig
    let labels: [String]
    let computeUnits: MLComputeUnits
    private let model: MLModel
    private let constraint: MLImageConstraint
    /// The multi-array output the app reads, and whether it holds logits (softmax applied) or probabilities.
    private let outputName: String
    private let outputIsLogits: Bool

    /// Loads and checks the model. Slow on first launch (Core ML specialises the model for the device): call it
    /// off the main thread.
    init(_ bundled: BundledModel, computeUnits: MLComputeUnits = .all) throws {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        let model = try MLModel(contentsOf: bundled.modelURL, configuration: configuration)
        let config = bundled.config
        let description = model.modelDescription
        guard let constraint = description.inputDescriptionsByName[config.input.name]?.imageConstraint,
              constraint.pixelsWide == config.preprocess.imgSize,
              constraint.pixelsHigh == config.preprocess.imgSize else {
            throw DemoError.badConfig("model.json does not describe the bundled model (no \(config.input.name) image "
                + "input of \(config.preprocess.imgSize) px): run sdeploy bundle --app ios again")
        }
        let output = try Self.scoresOutput(config.output, in: description)
        self.config = config
        self.labels = bundled.labels
        self.computeUnits = computeUnits
        self.model = model
        self.constraint = constraint
        self.outputName = output.name
        self.outputIsLogits = output.areLogits
    }

    /// The output to read: model.json's `output` if it is a multi-array. A classifier's `classLabel_probs` is a
    /// dictionary keyed by label, so for it the model's `logits` multi-array is read instead (exact, and what the
    /// self-test's `expected` holds).
    static func scoresOutput(_ output: ModelConfig.TensorInfo, in description: MLModelDescription) throws
        -> (name: String, areLogits: Bool)
    {
        let outputs = description.outputDescriptionsByName
        if outputs[output.name]?.type == .multiArray {
            return (output.name, output.kind != "probabilities")
        }
        if outputs["logits"]?.type == .multiArray {
            return ("logits", true)
        }
        throw DemoError.badOutput("the model has no \(output.name) or logits multi-array output: "
            + "re-export with sdeploy export --target coreml")
    }

    /// Decodes and downsamples a picture (ImageIO), on this actor: off the main thread.
    func prepare(_ data: Data) throws -> PreparedImage {
        try ImageLoader.prepare(data, resizeSize: config.preprocess.resizeSize)
    }

    /// The model's input for a picture: Core ML crops the contract's centre crop (`CropGeometry`, computed on the
    /// original size, so it is the same region of the downsampled copy) and scales it to img_size x img_size
    /// (`.scaleFill`), in the model's pixel format. The model itself applies the pixel scale, colour order and
    /// mean/std.
    private func input(for image: PreparedImage) throws -> MLFeatureProvider {
        let options = Self.cropOptions(width: image.originalWidth, height: image.originalHeight, preprocess: config.preprocess)
        let value = try MLFeatureValue(cgImage: image.image, constraint: constraint, options: options)
        return try MLDictionaryFeatureProvider(dictionary: [config.input.name: value])
    }

    /// The crop/scale options the app gives Core ML (the same as Vision's `regionOfInterest` + `.scaleFill`).
    static func cropOptions(width: Int, height: Int, preprocess: ModelConfig.Preprocess) -> [MLFeatureValue.ImageOption: Any] {
        let roi = CropGeometry.regionOfInterest(width: width, height: height, imgSize: preprocess.imgSize,
                                                resizeSize: preprocess.resizeSize)
        return [.cropRect: roi, .cropAndScale: VNImageCropAndScaleOption.scaleFill.rawValue]
    }

    /// One prediction: crop/scale (not timed), then `MLModel.prediction` (timed).
    func run(_ image: PreparedImage) throws -> ModelRun {
        let features = try input(for: image)
        let clock = ContinuousClock()
        var result: MLFeatureProvider?
        let elapsed = try clock.measure {
            result = try model.prediction(from: features)
        }
        guard let result else { throw DemoError.badOutput("the model returned nothing") }
        return ModelRun(values: try values(of: result), areLogits: outputIsLogits, milliseconds: Self.milliseconds(elapsed))
    }

    /// Top-k classes of a picture.
    func classify(_ image: PreparedImage, top k: Int = 5) throws -> Classification {
        let result = try run(image)
        return Classification(predictions: Scores.top(result.values, labels: labels, k: k, areLogits: result.areLogits),
                              milliseconds: result.milliseconds)
    }

    /// Wall times of `timed` predictions on one picture after `warmup` untimed ones (the self-test's latency).
    func latencies(_ image: PreparedImage, warmup: Int, timed: Int) throws -> [Double] {
        let features = try input(for: image)
        let clock = ContinuousClock()
        for _ in 0..<max(warmup, 0) {
            _ = try model.prediction(from: features)
        }
        var times: [Double] = []
        for _ in 0..<max(timed, 0) {
            let elapsed = try clock.measure {
                _ = try model.prediction(from: features)
            }
            times.append(Self.milliseconds(elapsed))
        }
        return times
    }

    private func values(of result: MLFeatureProvider) throws -> [Double] {
        guard let array = result.featureValue(for: outputName)?.multiArrayValue else {
            throw DemoError.badOutput("the model returned no \(outputName) multi-array")
        }
        let values = try Self.doubles(array)
        guard values.count == config.numClasses else {
            throw DemoError.badOutput("the model returned \(values.count) values for \(config.numClasses) classes")
        }
        return values
    }

    /// The values of a (1, ..., 1, classes) multi-array of any data type (Float16, Float32, Double), honouring strides.
    static func doubles(_ array: MLMultiArray) throws -> [Double] {
        let shape = array.shape.map { $0.intValue }
        guard let classes = shape.last, shape.dropLast().allSatisfy({ $0 == 1 }) else {
            throw DemoError.badOutput("unexpected output shape \(shape)")
        }
        var index = [NSNumber](repeating: 0, count: shape.count)
        var values = [Double](repeating: 0, count: classes)
        for k in 0..<classes {
            index[shape.count - 1] = NSNumber(value: k)
            values[k] = array[index].doubleValue
        }
        return values
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) * 1_000 + Double(parts.attoseconds) / 1e15
    }
}

extension MLComputeUnits {
    /// The name used in the self-test's device report (its `accelerator`).
    var name: String {
        switch self {
        case .cpuOnly: return "cpuOnly"
        case .cpuAndGPU: return "cpuAndGPU"
        case .cpuAndNeuralEngine: return "cpuAndNeuralEngine"
        case .all: return "all"
        @unknown default: return "computeUnits \(rawValue)"
        }
    }
}
