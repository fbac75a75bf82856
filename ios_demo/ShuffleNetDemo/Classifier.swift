import CoreML
import ImageIO
import UIKit
import Vision

struct Prediction: Identifiable {
    let label: String
    let probability: Float
    var id: String { label }
}

struct Classification {
    let predictions: [Prediction]
    /// Wall time of VNImageRequestHandler.perform: Vision's crop/scale plus Core ML inference.
    let milliseconds: Double
}

enum ClassifierError: LocalizedError {
    case modelNotBundled(String)
    case badConfig(String)
    case unreadableImage
    case noResults

    var errorDescription: String? {
        switch self {
        case .modelNotBundled(let file):
            return "\(file) is not in the app. From the repository root run\n"
                + "sdeploy bundle --app ios --arch v2_x0_5\n"
                + "then run xcodegen generate in ios_demo/ and build again."
        case .badConfig(let message):
            return message
        case .unreadableImage:
            return "This image has no bitmap that Vision can read."
        case .noResults:
            return "The model returned no classifications: bundle a classifier-mode Core ML export."
        }
    }
}

/// ShuffleNetClassifier (the class Xcode generates from ShuffleNetClassifier.mlpackage) run through Vision.
///
/// The model takes an `image` input and does the pixel scale, colour order and per-channel mean/std itself;
/// Vision converts the picture to the model's pixel format. The app only has to reproduce the contract's
/// geometry: resize the shorter side to resize_size and centre-crop img_size (see regionOfInterest).
final class Classifier: @unchecked Sendable {  // immutable after init; VNCoreMLModel is safe to share
    static let modelName = "ShuffleNetClassifier"

    let config: ModelConfig
    private let visionModel: VNCoreMLModel
    private let queue = DispatchQueue(label: "ShuffleNetDemo.classifier", qos: .userInitiated)

    /// Loads model.json and the compiled model. Slow on first launch (Core ML specialises the model for
    /// the device), so call it off the main thread.
    init(bundle: Bundle = .main) throws {
        guard bundle.url(forResource: Self.modelName, withExtension: "mlmodelc") != nil else {
            throw ClassifierError.modelNotBundled("\(Self.modelName).mlpackage")
        }
        config = try ModelConfig.load(from: bundle)
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        let model = try ShuffleNetClassifier(configuration: configuration).model
        let constraint = model.modelDescription.inputDescriptionsByName[config.input.name]?.imageConstraint
        guard let constraint,
              constraint.pixelsWide == config.preprocess.imgSize,
              constraint.pixelsHigh == config.preprocess.imgSize else {
            throw ClassifierError.badConfig("model.json does not describe the bundled model (no \(config.input.name) "
                + "image input of \(config.preprocess.imgSize) px): run sdeploy bundle --app ios again")
        }
        visionModel = try VNCoreMLModel(for: model)
    }

    /// Top-k classes of `image`; runs on a background queue.
    func classify(_ image: UIImage, top k: Int = 5) async throws -> Classification {
        guard let cgImage = image.cgImage else { throw ClassifierError.unreadableImage }
        // UIImage keeps the raw bitmap in cgImage and the EXIF orientation in imageOrientation.
        let orientation = CGImagePropertyOrientation(image.imageOrientation)
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.run(cgImage, orientation: orientation, top: k) })
            }
        }
    }

    private func run(_ cgImage: CGImage, orientation: CGImagePropertyOrientation, top k: Int) throws -> Classification {
        // Vision applies the orientation first, so the ROI is normalised to the upright image's size.
        let width = Double(orientation.swapsWidthAndHeight ? cgImage.height : cgImage.width)
        let height = Double(orientation.swapsWidthAndHeight ? cgImage.width : cgImage.height)
        let request = VNCoreMLRequest(model: visionModel)
        request.imageCropAndScaleOption = .scaleFill
        request.regionOfInterest = Self.regionOfInterest(
            width: width, height: height,
            imgSize: Double(config.preprocess.imgSize), resizeSize: Double(config.preprocess.resizeSize))
        let handler = VNImageRequestHandler(cgImage: cgImage, orientation: orientation, options: [:])

        let start = DispatchTime.now().uptimeNanoseconds
        try handler.perform([request])
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000

        guard let observations = request.results as? [VNClassificationObservation], !observations.isEmpty else {
            throw ClassifierError.noResults
        }
        let best = observations.sorted { $0.confidence > $1.confidence }.prefix(k)
        return Classification(
            predictions: best.map { Prediction(label: $0.identifier, probability: $0.confidence) },
            milliseconds: milliseconds)
    }

    // ROI-FORMULA-BEGIN: keep these lines identical to roi_for() in tests/test_ios_demo.py, which checks them.
    // The contract resizes the shorter side to resize_size, then centre-crops img_size: it keeps the centred
    // square whose side is shortSide * img_size / resize_size. Vision crops that square (regionOfInterest,
    // normalised to the upright image) and .scaleFill scales it to img_size x img_size: square to square, so
    // nothing is distorted. Vision's origin is the lower-left corner; the square is centred, so y is the same
    // measured from the bottom or from the top.
    static func regionOfInterest(width w: Double, height h: Double, imgSize: Double, resizeSize: Double) -> CGRect {
        let side = min(w, h) * imgSize / resizeSize
        let x = (w - side) / 2 / w
        let y = (h - side) / 2 / h
        return CGRect(x: x, y: y, width: side / w, height: side / h)
    }
    // ROI-FORMULA-END
}

extension CGImagePropertyOrientation {
    init(_ orientation: UIImage.Orientation) {
        switch orientation {
        case .up: self = .up
        case .upMirrored: self = .upMirrored
        case .down: self = .down
        case .downMirrored: self = .downMirrored
        case .left: self = .left
        case .leftMirrored: self = .leftMirrored
        case .right: self = .right
        case .rightMirrored: self = .rightMirrored
        @unknown default: self = .up
        }
    }

    /// EXIF orientations 5-8 turn the bitmap by 90 degrees: the upright image is cgImage.height wide.
    var swapsWidthAndHeight: Bool {
        switch self {
        case .left, .leftMirrored, .right, .rightMirrored: return true
        default: return false
        }
    }
}
