import Foundation

/// `model.json`, which `sdeploy bundle --app ios` writes next to the model (docs/app-protocol.md,
/// schema `sdeploy-app-model/2`). Only the keys the app reads are declared; unknown keys are ignored.
/// `ModelConfigTests` decodes a model.json written by the real `sdeploy bundle`.
struct ModelConfig: Decodable, Sendable, Equatable {
    /// Schema 1 files (before self-tests) still load: they lack `target`, `selftest_file` and `output.kind`.
    static let supportedSchemas: Set<String> = ["sdeploy-app-model/2", "sdeploy-app-model/1"]
    /// The only engine this app has: Core ML.
    static let supportedFormat = "mlpackage"

    let schema: String
    let arch: String
    let artifact: String
    let format: String?
    let modelFile: String
    let sha256: String?
    let precision: String
    let numClasses: Int
    let labelsFile: String
    let selftestFile: String?
    let input: TensorInfo
    let output: TensorInfo
    let preprocess: Preprocess
    let weights: Weights

    enum CodingKeys: String, CodingKey {
        case schema, arch, artifact, format, sha256, precision, input, output, preprocess, weights
        case modelFile = "model_file"
        case numClasses = "num_classes"
        case labelsFile = "labels_file"
        case selftestFile = "selftest_file"
    }

    struct TensorInfo: Decodable, Sendable, Equatable {
        let name: String
        /// input: `image` (Core ML image input) for this app. output: `logits` or `probabilities`.
        let kind: String?
        let dtype: String?
    }

    struct Preprocess: Decodable, Sendable, Equatable {
        let imgSize: Int
        let resizeSize: Int
        let resize: String
        let crop: String
        let colorOrder: String

        enum CodingKeys: String, CodingKey {
            case resize, crop
            case imgSize = "img_size"
            case resizeSize = "resize_size"
            case colorOrder = "color_order"
        }
    }

    struct Weights: Decodable, Sendable, Equatable {
        let kind: String
    }

    /// Decodes and checks model.json.
    static func decode(_ data: Data) throws -> ModelConfig {
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch {
            throw DemoError.badConfig("model.json cannot be read (\(Self.describe(error))): run sdeploy bundle --app ios again")
        }
        try config.validate()
        return config
    }

    /// The app honours the contract only for what it implements; anything else is an error, not a guess.
    func validate() throws {
        guard Self.supportedSchemas.contains(schema) else {
            throw DemoError.badConfig("model.json has schema \(schema); this app reads sdeploy-app-model/2")
        }
        if let format, format != Self.supportedFormat {
            throw DemoError.badConfig("model.json describes a \(format) model; this app runs Core ML (.mlpackage): "
                + "run sdeploy bundle --app ios")
        }
        guard input.kind == "image" else {
            throw DemoError.badConfig("the model's input is a \(input.kind ?? "tensor"), not a Core ML image: "
                + "re-bundle with sdeploy bundle --app ios")
        }
        guard preprocess.resize == "shorter-side", preprocess.crop == "center" else {
            throw DemoError.badConfig("unsupported preprocessing \(preprocess.resize) / \(preprocess.crop)")
        }
        guard preprocess.imgSize > 0, preprocess.resizeSize >= preprocess.imgSize else {
            throw DemoError.badConfig("resize_size \(preprocess.resizeSize) is smaller than img_size \(preprocess.imgSize)")
        }
        guard numClasses > 0 else {
            throw DemoError.badConfig("model.json has num_classes \(numClasses)")
        }
        let outputKinds: [String?] = [nil, "logits", "probabilities", "tensor"]  // schema 1 wrote "tensor" for logits
        guard outputKinds.contains(output.kind) else {
            throw DemoError.badConfig("the model's output is \(output.kind ?? "?"), not logits or probabilities")
        }
    }

    /// img_size / resize_size: the share of the shorter side the centre crop keeps (224/256 = 0.875).
    var cropRatio: Double { Double(preprocess.imgSize) / Double(preprocess.resizeSize) }

    /// The compiled model's resource name: Xcode compiles ShuffleNetClassifier.mlpackage to ShuffleNetClassifier.mlmodelc.
    var compiledModelName: String { (modelFile as NSString).deletingPathExtension }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "no \(Self.path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(Self.path(context.codingPath)) has the wrong type"
        case DecodingError.dataCorrupted(let context):
            return context.debugDescription
        default:
            return error.localizedDescription
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { key in key.intValue.map { "\($0)" } ?? key.stringValue }.joined(separator: ".")
    }
}
