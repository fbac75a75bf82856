import Foundation

/// The app-side contract `sdeploy bundle --app ios` writes next to the model as `model.json`
/// (schema "sdeploy-app-model/1"). Only the keys the app reads are declared; every key named
/// here is checked against a real bundled model.json by tests/test_ios_demo.py.
struct ModelConfig: Decodable {
    static let supportedSchema = "sdeploy-app-model/1"

    let schema: String
    let arch: String
    let artifact: String
    let modelFile: String
    let precision: String
    let numClasses: Int
    let labelsFile: String
    let input: ModelInput
    let preprocess: Preprocess
    let weights: ModelWeights

    enum CodingKeys: String, CodingKey {
        case schema, arch, artifact, precision, input, preprocess, weights
        case modelFile = "model_file"
        case numClasses = "num_classes"
        case labelsFile = "labels_file"
    }

    /// Reads and checks `model.json` from the app bundle.
    static func load(from bundle: Bundle = .main) throws -> ModelConfig {
        guard let url = bundle.url(forResource: "model", withExtension: "json") else {
            throw ClassifierError.modelNotBundled("model.json")
        }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: Data(contentsOf: url))
        } catch {
            throw ClassifierError.badConfig("model.json cannot be read: \(error.localizedDescription)")
        }
        try config.validate()
        return config
    }

    /// The app honours the contract only for what it implements; anything else is an error, not a guess.
    func validate() throws {
        guard schema == Self.supportedSchema else {
            throw ClassifierError.badConfig("model.json has schema \(schema); this app reads \(Self.supportedSchema)")
        }
        guard input.kind == "image" else {
            throw ClassifierError.badConfig("the model's input is a \(input.kind), not an image: re-bundle with sdeploy bundle --app ios")
        }
        guard preprocess.resize == "shorter-side", preprocess.crop == "center" else {
            throw ClassifierError.badConfig("unsupported preprocessing \(preprocess.resize) / \(preprocess.crop)")
        }
        guard preprocess.imgSize > 0, preprocess.resizeSize >= preprocess.imgSize else {
            throw ClassifierError.badConfig("resize_size \(preprocess.resizeSize) is smaller than img_size \(preprocess.imgSize)")
        }
    }

    /// img_size / resize_size: the share of the shorter side the centre crop keeps (224/256 = 0.875).
    var cropRatio: Double { Double(preprocess.imgSize) / Double(preprocess.resizeSize) }
}

struct ModelInput: Decodable {
    let name: String
    let shape: [Int]
    let kind: String
}

struct Preprocess: Decodable {
    let imgSize: Int
    let resizeSize: Int
    let resize: String
    let crop: String
    let interpolation: String
    let colorOrder: String

    enum CodingKeys: String, CodingKey {
        case resize, crop, interpolation
        case imgSize = "img_size"
        case resizeSize = "resize_size"
        case colorOrder = "color_order"
    }
}

struct ModelWeights: Decodable {
    let kind: String
}
